import { randomBytes, randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { callAsync, callbackError } from '../../callbacks.js'
import { StoreDataError } from '../../errors.js'
import { sha256Text } from '../../hash.js'
import type { MultiauthStore } from '../../stores/types.js'
import { isPlainObject } from '../../validate.js'
import type { MultiauthUser } from '../../types.js'
import type { AuthTokens, IssuedTokens, TokenClaims, TokenClaimsInput, TokenOptions } from './types.js'

// What the store holds about tokens, and the helpers that change it: issuing, refresh-token
// rotation with reuse detection, revocation and "log out everywhere" (`app.authTokens`).

// Store keys. Refresh tokens are stored by their SHA-256, so a store dump holds no usable token.
const REVOKED = 'tok:rv:' // + jti → access token revoked until its expiry
const NOT_BEFORE = 'tok:nb:' // + sub → tokens issued before this second are revoked ("log out everywhere")
const REFRESH = 'tok:rt:' // + hash → refresh token record
const REFRESH_USED = 'tok:ru:' // + hash → set once, by the refresh that consumed it
const FAMILY_REVOKED = 'tok:rf:' // + family id → every refresh token of that login is dead

export const REFRESH_TOKEN_MAX_LENGTH = 256

interface RefreshRecord {
  /** Claims from `claims(user)` at login, handed to `lookup` on refresh. */
  c: TokenClaimsInput
  /** Family id: every refresh token rotated from one login. */
  f: string
  /** When the family started, in seconds: compared with the user's "log out everywhere" time. */
  t: number
  /** Fingerprint of the key that issued it: only a configuration holding that key redeems it. */
  k: string
}

/** What the lifecycle needs from the token method, resolved at registration. */
export interface LifecycleConfig {
  store: MultiauthStore
  /** Bounds `claims` and `lookup` (the plugin's `timeout`). */
  timeoutMs: number
  /** Signs an access token's claims with the signing key (set once @fastify/jwt is registered). */
  sign: (claims: Record<string, unknown>) => string
  canSign: boolean
  /** The signing key's fingerprint (written into refresh records). */
  signingFingerprint: string
  /** Fingerprints of every configured key (a refresh record must name one of them). */
  fingerprints: ReadonlySet<string>
  lookup: TokenOptions['lookup']
  claimsFor: TokenOptions['claims']
  accessTtl: number
  refreshTtl: number
  refreshOn: boolean
  revocation: boolean
  toleranceMs: number
}

/** Why a presented access token is refused by the store's state, or `undefined` when it is not. */
export type RevocationState = 'revoked' | 'logged-out' | undefined

export interface TokenLifecycle {
  helpers: AuthTokens
  /** One round trip: this token's jti, and the user's "log out everywhere" time. */
  revocationOf (claims: Record<string, unknown>): Promise<RevocationState>
}

function digest (token: string): string {
  return sha256Text(token, 'base64url')
}

function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

/**
 * The "log out everywhere" second stored for a user. Anything that cannot be read as one (a
 * value another writer left, a truncated write) refuses every token: the safe direction.
 */
function notBeforeOf (value: string | null | undefined): number {
  if (value === null || value === undefined) return 0
  const seconds = Number(value)
  return value.length > 0 && Number.isSafeInteger(seconds) && seconds >= 0 ? seconds : Number.POSITIVE_INFINITY
}

/**
 * When the request's credentials were checked, in ms: set by the token routes before their guard
 * runs, so `POST /tokens` issues with the time of its password check (see `signAccessToken`).
 */
export const kVerifiedAt = Symbol('fastify-multiauth.verifiedAt')
interface VerifiedRequest extends FastifyRequest { [kVerifiedAt]?: number }

function verifiedSecond (at: number | Date | undefined): number {
  if (at === undefined) return nowSeconds()
  const ms = at instanceof Date ? at.getTime() : at
  if (typeof ms !== 'number' || !Number.isFinite(ms)) throw new TypeError('fastify-multiauth: issue(user, request, { verifiedAt }) takes a time in ms or a Date')
  // Never later than now: a time in the future would outlive a "log out everywhere" issued before it.
  return Math.floor(Math.min(ms, Date.now()) / 1000)
}

function defaultClaims (user: MultiauthUser): TokenClaimsInput {
  const id = (user as { id?: unknown }).id
  if ((typeof id === 'string' && id.length > 0) || typeof id === 'number') return { sub: String(id) }
  throw new TypeError('fastify-multiauth: the user has no string or number `id`; pass token.claims(user) returning { sub }')
}

/** A stored refresh record: one the plugin cannot read is a server error, never a pass nor a crash. */
function parseRefreshRecord (stored: string): RefreshRecord {
  let record: unknown
  try {
    record = JSON.parse(stored)
  } catch (err) {
    throw new StoreDataError({ cause: err })
  }
  if (!isPlainObject(record) || !isPlainObject(record.c) || typeof record.c.sub !== 'string' ||
    typeof record.f !== 'string' || !Number.isSafeInteger(record.t) || typeof record.k !== 'string') {
    throw new StoreDataError({ cause: new TypeError('refresh token record has the wrong shape') })
  }
  return record as unknown as RefreshRecord
}

export function createTokenLifecycle (config: LifecycleConfig): TokenLifecycle {
  const { store, timeoutMs, lookup, claimsFor, accessTtl, refreshTtl, refreshOn, revocation, toleranceMs } = config
  const readMany = store.getMany !== undefined
    ? async (k: readonly string[]) => await (store.getMany as NonNullable<MultiauthStore['getMany']>)(k)
    : async (k: readonly string[]) => await Promise.all(k.map(async (key) => await store.get(key)))

  async function claimsOf (user: MultiauthUser, request: FastifyRequest | undefined): Promise<TokenClaimsInput> {
    const claims = claimsFor === undefined
      ? await callAsync(timeoutMs, defaultClaims, user)
      : await callAsync(timeoutMs, claimsFor, user, request)
    if (!isPlainObject(claims) || typeof claims.sub !== 'string' || claims.sub.length === 0) {
      // Through the one error path: a 500 for the client, the reason in the log.
      throw callbackError(new TypeError('fastify-multiauth: token.claims(user) must return an object with a non-empty string `sub`'))
    }
    const { scope } = claims
    if (scope !== undefined && typeof scope !== 'string' && !(Array.isArray(scope) && scope.every((s) => typeof s === 'string' && !s.includes(' ')))) {
      throw callbackError(new TypeError('fastify-multiauth: token.claims(user) returned a `scope` that is neither a string nor an array of scope strings'))
    }
    return claims
  }

  /**
   * `iat` is the second the credential behind this token was verified, not the second it is signed:
   * a "log out everywhere" that lands between the two (a password reset while this login's claims
   * or lookup are still running) refuses the token, since the verification came before it.
   */
  function signAccessToken (claims: TokenClaimsInput, verifiedAt: number): string {
    if (!config.canSign) throw new TypeError('fastify-multiauth: the first of token.keys has no secret or privateKey, so tokens cannot be issued')
    const { scope } = claims
    return config.sign({
      ...claims,
      scope: Array.isArray(scope) ? scope.join(' ') : scope,
      jti: randomUUID(),
      iat: verifiedAt,
      exp: verifiedAt + accessTtl
    })
  }

  async function startRefresh (claims: TokenClaimsInput, family: string, familyStart: number): Promise<string> {
    const refreshToken = randomBytes(32).toString('base64url')
    const record: RefreshRecord = { c: claims, f: family, t: familyStart, k: config.signingFingerprint }
    await store.set(REFRESH + digest(refreshToken), JSON.stringify(record), refreshTtl * 1000)
    return refreshToken
  }

  async function issueFor (claims: TokenClaimsInput, verifiedAt: number, family: string | undefined, familyStart: number): Promise<IssuedTokens> {
    const token = signAccessToken(claims, verifiedAt)
    const issued: IssuedTokens = { token, expiration: accessTtl, access_token: token, token_type: 'Bearer', expires_in: accessTtl }
    if (refreshOn) issued.refresh_token = await startRefresh(claims, family ?? randomUUID(), familyStart)
    return issued
  }

  async function readRefresh (refreshToken: unknown): Promise<{ id: string, record: RefreshRecord } | undefined> {
    if (typeof refreshToken !== 'string' || refreshToken.length === 0 || refreshToken.length > REFRESH_TOKEN_MAX_LENGTH) return undefined
    const id = digest(refreshToken)
    const stored = await store.get(REFRESH + id)
    return stored === null ? undefined : { id, record: parseRefreshRecord(stored) }
  }

  const helpers: AuthTokens = {
    async issue (user, request, options) {
      const verifiedAt = verifiedSecond(options?.verifiedAt ?? (request as VerifiedRequest | undefined)?.[kVerifiedAt])
      return await issueFor(await claimsOf(user, request), verifiedAt, undefined, verifiedAt)
    },

    async refresh (refreshToken, request) {
      if (!refreshOn) throw new TypeError('fastify-multiauth: refresh tokens are off; set token.refresh')
      // Before any check: a revocation that lands while this refresh runs is after its verification.
      const verifiedAt = nowSeconds()
      const refuse = (reason: string): null => {
        request.log.info({ authMethod: 'token', reason }, 'multiauth: refresh token refused')
        return null
      }
      const found = await readRefresh(refreshToken)
      if (found === undefined) return refuse('unknown or expired refresh token')
      const { id, record } = found
      // Another application sharing the store (same prefix), or a key removed since: not ours to redeem.
      if (!config.fingerprints.has(record.k)) return refuse('refresh token issued under a key this configuration does not hold')
      // Single use: the first refresh to set this marker wins; anyone presenting the token
      // again is either the attacker or the victim, so the whole family dies (RFC 9700 §4.14.2).
      if (!(await store.setIfAbsent(REFRESH_USED + id, '1', refreshTtl * 1000))) {
        await store.set(FAMILY_REVOKED + record.f, '1', refreshTtl * 1000)
        request.log.warn({ authMethod: 'token', family: record.f }, 'multiauth: refresh token reused; its family is revoked')
        return null
      }
      const [familyRevoked, notBefore] = await readMany([FAMILY_REVOKED + record.f, NOT_BEFORE + record.c.sub])
      if (familyRevoked !== null && familyRevoked !== undefined) return refuse('refresh token family revoked')
      if (record.t < notBeforeOf(notBefore)) return refuse('user logged out everywhere')
      const user = await callAsync(timeoutMs, lookup, record.c as TokenClaims, request)
      if (!user) return refuse('lookup returned no user for the refresh token')
      return await issueFor(await claimsOf(user, request), verifiedAt, record.f, record.t)
    },

    async revoke (claims) {
      if (!revocation) throw new TypeError('fastify-multiauth: access tokens can only be revoked with token.revocation: true')
      const { jti, exp } = claims
      if (typeof jti !== 'string' || typeof exp !== 'number') throw new TypeError('fastify-multiauth: revoke(claims) needs the verified claims (jti, exp)')
      const ttl = exp * 1000 + toleranceMs - Date.now()
      if (ttl > 0) await store.set(REVOKED + jti, '1', ttl)
    },

    async revokeRefreshToken (refreshToken) {
      const found = await readRefresh(refreshToken)
      if (found !== undefined) await store.set(FAMILY_REVOKED + found.record.f, '1', refreshTtl * 1000)
    },

    async revokeAll (sub) {
      if (!revocation && !refreshOn) throw new TypeError('fastify-multiauth: revokeAll needs token.revocation or token.refresh')
      if (typeof sub !== 'string' || sub.length === 0) throw new TypeError('fastify-multiauth: revokeAll(sub) needs the user\'s token subject')
      // The next whole second: a token issued in this same second is refused too (iat has one-second
      // precision). Not Math.ceil, which leaves the current second open when called exactly on it.
      const notBefore = Math.floor(Date.now() / 1000) + 1
      const ttl = Math.max(accessTtl * 1000 + toleranceMs, refreshOn ? refreshTtl * 1000 : 0)
      await store.set(NOT_BEFORE + sub, String(notBefore), ttl)
    }
  }

  async function revocationOf (claims: Record<string, unknown>): Promise<RevocationState> {
    const [revoked, notBefore] = await readMany([REVOKED + (claims.jti as string), NOT_BEFORE + (claims.sub as string)])
    // Any value at all means revoked: the safe reading of a key we only ever set to '1'.
    if (revoked !== null && revoked !== undefined) return 'revoked'
    if ((claims.iat as number) < notBeforeOf(notBefore)) return 'logged-out'
    return undefined
  }

  return { helpers, revocationOf }
}
