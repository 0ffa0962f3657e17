import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { callAsync, callbackError } from '../../core/callbacks.js'
import { StoreDataError } from '../../core/errors.js'
import { events, requestFields } from '../../core/events.js'
import type { MaybeRequestFields } from '../../core/events.js'
import { sha256Text } from '../../lib/hash.js'
import type { MultiauthStore } from '../../stores/types.js'
import { isPlainObject } from '../../core/validate.js'
import type { MultiauthUser } from '../../core/types.js'
import type { AuthTokens, IssuedTokens, TokenClaims, TokenClaimsInput, TokenOptions } from './types.js'

// Events (src/core/events.ts): published once the store write they report has resolved; the
// payload is built only when someone subscribes. Ids only: a refresh family id revokes a family
// at most (it cannot mint a token), and its secret never leaves this file.

// What the store holds about tokens, and the helpers that change it: issuing, refresh-token
// rotation with reuse detection, revocation and "log out everywhere" (`app.authTokens`).

// Store keys. A user's keys share the Redis Cluster hash tag `{u:<sub>}`, so the revocation check
// reads its two keys in one MGET on a Cluster too. The `u:` keeps the tag non-empty whatever the
// sub (a tag `{}` would hash the whole key); a `}` inside a sub only shortens the tag, the same way
// for every key of that sub.
const userKeys = (sub: string): string => `tok:{u:${sub}}:`
/** Access token `jti` of `sub` revoked until its expiry. */
const revokedKey = (sub: string, jti: string): string => `${userKeys(sub)}rv:${jti}`
/** Tokens of `sub` issued before this second are revoked ("log out everywhere"). */
const notBeforeKey = (sub: string): string => `${userKeys(sub)}nb`
/** The user's live refresh families, newest last (capped). */
const familiesKey = (sub: string): string => `${userKeys(sub)}fs`
const FAMILY = 'tok:rf:' // + family id → the family's one record: who, since when, the hash of its current token
/** Revocations and rotations are written so that a failover cannot lose them, when the store can (RedisStore's waitForReplicas). */
const DURABLE = Object.freeze({ durable: true })

export const REFRESH_TOKEN_MAX_LENGTH = 256
/**
 * A refresh token is `<family id>.<secret>`: 128 random bits naming the family (every token rotated
 * from one login), 256 random bits of secret. The store keeps one record per family with the
 * SHA-256 of its current secret only, so a store dump holds no usable token, and rotating
 * replaces the record instead of leaving one record per rotation behind.
 */
const REFRESH_TOKEN = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/

interface FamilyRecord {
  /** Claims from `claims(user)` at login (or at the last rotation), handed to `findUser` on refresh. */
  c: TokenClaimsInput
  /** When the family started, in seconds: compared with the user's "log out everywhere" time. */
  t: number
  /** Fingerprint of the key that issued it: only a configuration holding that key redeems it. */
  k: string
  /** SHA-256 (base64url) of the current token's secret: any other secret of this family is a reuse. */
  h: string
}

/** What the lifecycle needs from the token method, resolved at registration. */
export interface LifecycleConfig {
  store: MultiauthStore
  /** Bounds `claims` and `findUser` (the plugin's `callbackTimeout`). */
  timeoutMs: number
  /** Signs an access token's claims with the signing key (set once @fastify/jwt is registered). */
  sign: (claims: Record<string, unknown>) => string
  canSign: boolean
  /** The signing key's fingerprint (written into refresh records). */
  signingFingerprint: string
  /** Fingerprints of every configured key (a refresh record must name one of them). */
  fingerprints: ReadonlySet<string>
  findUser: TokenOptions['findUser']
  claimsFor: TokenOptions['claims']
  accessTtl: number
  refreshTtl: number
  /** Live refresh families per `sub`; the oldest is revoked beyond it. */
  maxFamilies: number
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
  if (typeof ms !== 'number' || !Number.isFinite(ms)) throw new TypeError('fastify-multiauth: issue(user, { verifiedAt }) takes a time in ms or a Date')
  // Never later than now: a time in the future would outlive a "log out everywhere" issued before it.
  return Math.floor(Math.min(ms, Date.now()) / 1000)
}

function defaultClaims (user: MultiauthUser): TokenClaimsInput {
  const id = (user as { id?: unknown }).id
  if ((typeof id === 'string' && id.length > 0) || typeof id === 'number') return { sub: String(id) }
  throw new TypeError('fastify-multiauth: the user has no string or number `id`; pass token.claims(user) returning { sub }')
}

/** A stored family record: one the plugin cannot read is a server error, never a pass nor a crash. */
function parseFamilyRecord (stored: string): FamilyRecord {
  let record: unknown
  try {
    record = JSON.parse(stored)
  } catch (err) {
    throw new StoreDataError({ cause: err })
  }
  if (!isPlainObject(record) || !isPlainObject(record.c) || typeof record.c.sub !== 'string' ||
    !Number.isSafeInteger(record.t) || typeof record.k !== 'string' || typeof record.h !== 'string') {
    throw new StoreDataError({ cause: new TypeError('refresh token family record has the wrong shape') })
  }
  return record as unknown as FamilyRecord
}

/** The request fields of an event, when the flow has a request (`app.authTokens` may be called without one). */
function where (request: FastifyRequest | undefined): MaybeRequestFields {
  return request === undefined ? {} : requestFields(request)
}

function sameDigest (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export function createTokenLifecycle (config: LifecycleConfig): TokenLifecycle {
  const { store, timeoutMs, findUser, claimsFor, accessTtl, refreshTtl, refreshOn, revocation, toleranceMs } = config
  const readMany = store.getMany !== undefined
    ? async (k: readonly string[]) => await (store.getMany as NonNullable<MultiauthStore['getMany']>)(k)
    : async (k: readonly string[]) => await Promise.all(k.map(async (key) => await store.get(key)))

  async function claimsOf (user: MultiauthUser, request: FastifyRequest | undefined): Promise<TokenClaimsInput> {
    const claims = claimsFor === undefined
      ? await callAsync(timeoutMs, 'token.claims', request, defaultClaims, user)
      : await callAsync(timeoutMs, 'token.claims', request, claimsFor, user, request)
    if (!isPlainObject(claims) || typeof claims.sub !== 'string' || claims.sub.length === 0) {
      // Through the one error path: a 500 for the client, the reason in the log.
      throw callbackError(new TypeError('fastify-multiauth: token.claims(user) must return an object with a non-empty string `sub`'), 'token.claims', request)
    }
    const { scope } = claims
    if (scope !== undefined && typeof scope !== 'string' && !(Array.isArray(scope) && scope.every((s) => typeof s === 'string' && !s.includes(' ')))) {
      throw callbackError(new TypeError('fastify-multiauth: token.claims(user) returned a `scope` that is neither a string nor an array of scope strings'), 'token.claims', request)
    }
    // The claims become JSON (the token's payload, the refresh record): a BigInt, a cycle or a getter
    // that throws would fail the signing with the serialiser's text (it names the claim's properties),
    // which Fastify's default handler sends as the body. Checked here, so it takes the one error path.
    try {
      JSON.stringify(claims)
    } catch (err) {
      throw callbackError(new TypeError('fastify-multiauth: token.claims(user) returned claims that cannot be written as JSON', { cause: err }), 'token.claims', request)
    }
    return claims
  }

  /**
   * `iat` is the second the credential behind this token was verified, not the second it is signed:
   * a "log out everywhere" that lands between the two (a password reset while this login's claims
   * or findUser are still running) refuses the token, since the verification came before it.
   */
  function signAccessToken (claims: TokenClaimsInput, verifiedAt: number, jti: string): string {
    if (!config.canSign) throw new TypeError('fastify-multiauth: the first of token.keys has no secret or privateKey, so tokens cannot be issued')
    const { scope } = claims
    return config.sign({
      ...claims,
      scope: Array.isArray(scope) ? scope.join(' ') : scope,
      jti,
      iat: verifiedAt,
      // The lifetime counts from now, so `expires_in` in the response is exact.
      exp: nowSeconds() + accessTtl
    })
  }

  function issued (accessToken: string): IssuedTokens {
    return { accessToken, tokenType: 'Bearer', expiresIn: accessTtl }
  }

  /** A new family for a login: its record, and its place among the user's families (the oldest beyond the cap dies). Resolves the family id and the refresh token. */
  async function startFamily (claims: TokenClaimsInput, familyStart: number): Promise<[family: string, refreshToken: string]> {
    const family = randomBytes(16).toString('base64url')
    const secret = randomBytes(32).toString('base64url')
    const record: FamilyRecord = { c: claims, t: familyStart, k: config.signingFingerprint, h: digest(secret) }
    await store.set(FAMILY + family, JSON.stringify(record), refreshTtl * 1000)
    if (store.addCapped !== undefined) {
      const dropped = await store.addCapped(familiesKey(claims.sub), family, config.maxFamilies, refreshTtl * 1000)
      for (const old of dropped) await store.delete(FAMILY + old, DURABLE)
    }
    return [family, `${family}.${secret}`]
  }

  /** The family a refresh token names, with its record; `undefined` for a malformed or unknown token. */
  async function readFamily (refreshToken: unknown): Promise<{ family: string, secret: string, stored: string, record: FamilyRecord } | undefined> {
    if (typeof refreshToken !== 'string') return undefined
    const match = REFRESH_TOKEN.exec(refreshToken)
    if (match === null) return undefined
    const [, family = '', secret = ''] = match
    const stored = await store.get(FAMILY + family)
    return stored === null ? undefined : { family, secret, stored, record: parseFamilyRecord(stored) }
  }

  /** Rotates atomically: of two requests presenting the same token, only one finds the record unchanged. */
  async function rotate (family: string, expected: string, next: string): Promise<boolean> {
    const key = FAMILY + family
    // Durable: a failover that lost the rotation would make the spent token valid again.
    if (store.compareAndSet !== undefined) return await store.compareAndSet(key, expected, next, refreshTtl * 1000, DURABLE)
    // A custom store without compare-and-set: read, compare, write (a window of one round trip).
    if ((await store.get(key)) !== expected) return false
    await store.set(key, next, refreshTtl * 1000, DURABLE)
    return true
  }

  const helpers: AuthTokens = {
    async issue (user, options) {
      const request = options?.request
      const verifiedAt = verifiedSecond(options?.verifiedAt ?? (request as VerifiedRequest | undefined)?.[kVerifiedAt])
      const claims = await claimsOf(user, request)
      const jti = randomUUID()
      const result = issued(signAccessToken(claims, verifiedAt, jti))
      let familyId: string | undefined
      if (refreshOn) [familyId, result.refreshToken] = await startFamily(claims, verifiedAt)
      if (events['token:issued'].hasSubscribers) events['token:issued'].publish({ ...where(request), userId: claims.sub, jti, familyId })
      return result
    },

    async refresh (refreshToken, { request }) {
      if (!refreshOn) throw new TypeError('fastify-multiauth: refresh tokens are off; set token.refresh')
      // Before any check: a revocation that lands while this refresh runs is after its verification.
      const verifiedAt = nowSeconds()
      const refuse = (reason: string): null => {
        request.log.info({ authMethod: 'token', reason }, 'multiauth: refresh token refused')
        return null
      }
      const found = await readFamily(refreshToken)
      if (found === undefined) return refuse('unknown, expired or revoked refresh token')
      const { family, secret, stored, record } = found
      // Another application sharing the store (same prefix), or a key removed since: not ours to redeem.
      if (!config.fingerprints.has(record.k)) return refuse('refresh token issued under a key this configuration does not hold')
      const reused = async (): Promise<null> => {
        // Single use: anyone presenting a spent token of this family is either the attacker or the
        // victim, so the whole family dies (RFC 9700 §4.14.2).
        await store.delete(FAMILY + family, DURABLE)
        request.log.warn({ authMethod: 'token', family }, 'multiauth: refresh token reused; its family is revoked')
        if (events['token:refresh-reused'].hasSubscribers) events['token:refresh-reused'].publish({ ...requestFields(request), userId: record.c.sub, familyId: family })
        return null
      }
      if (!sameDigest(digest(secret), record.h)) return await reused()
      if (record.t < notBeforeOf(await store.get(notBeforeKey(record.c.sub)))) {
        await store.delete(FAMILY + family, DURABLE)
        return refuse('user logged out everywhere')
      }
      const user = await callAsync(timeoutMs, 'token.findUser', request, findUser, record.c as TokenClaims, request)
      if (!user) return refuse('findUser returned no user for the refresh token')
      const claims = await claimsOf(user, request)
      const nextSecret = randomBytes(32).toString('base64url')
      const next: FamilyRecord = { c: claims, t: record.t, k: config.signingFingerprint, h: digest(nextSecret) }
      // Another request rotated this very token in the meantime: a reuse.
      if (!(await rotate(family, stored, JSON.stringify(next)))) return await reused()
      const jti = randomUUID()
      const result = issued(signAccessToken(claims, verifiedAt, jti))
      result.refreshToken = `${family}.${nextSecret}`
      if (events['token:refreshed'].hasSubscribers) events['token:refreshed'].publish({ ...requestFields(request), userId: claims.sub, familyId: family, jti })
      return result
    },

    async revoke (claims, options) {
      if (!revocation) throw new TypeError('fastify-multiauth: access tokens can only be revoked with token.revocation: true')
      const { sub, jti, exp } = claims
      if (typeof sub !== 'string' || typeof jti !== 'string' || typeof exp !== 'number') throw new TypeError('fastify-multiauth: revoke(claims) needs the verified claims (sub, jti, exp)')
      const ttl = exp * 1000 + toleranceMs - Date.now()
      // An expired token (beyond the clock tolerance) is refused anyway: nothing is written, nothing reported.
      if (ttl <= 0) return
      await store.set(revokedKey(sub, jti), '1', ttl, DURABLE)
      if (events['token:revoked'].hasSubscribers) events['token:revoked'].publish({ ...where(options?.request), userId: sub, kind: 'access', jti })
    },

    async revokeRefreshToken (refreshToken, options) {
      const found = await readFamily(refreshToken)
      // Only a token of this family revokes it (a spent one too: its holder's login is over either way).
      if (found !== undefined && config.fingerprints.has(found.record.k)) {
        await store.delete(FAMILY + found.family, DURABLE)
        if (events['token:revoked'].hasSubscribers) {
          events['token:revoked'].publish({ ...where(options?.request), userId: found.record.c.sub, kind: 'refresh', familyId: found.family })
        }
      } else if (found === undefined && typeof refreshToken === 'string') {
        // Gone already, perhaps by this very revocation tried before (the primary deleted it, the
        // replicas did not acknowledge): delete again, durably, so the answer means the same.
        const family = REFRESH_TOKEN.exec(refreshToken)?.[1]
        if (family !== undefined) await store.delete(FAMILY + family, DURABLE)
      }
    },

    async revokeAll (sub, options) {
      if (!revocation && !refreshOn) throw new TypeError('fastify-multiauth: revokeAll needs token.revocation or token.refresh')
      if (typeof sub !== 'string' || sub.length === 0) throw new TypeError('fastify-multiauth: revokeAll(sub) needs the user\'s token subject')
      // The next whole second: a token issued in this same second is refused too (iat has one-second
      // precision). Not Math.ceil, which leaves the current second open when called exactly on it.
      const notBefore = Math.floor(Date.now() / 1000) + 1
      const ttl = Math.max(accessTtl * 1000 + toleranceMs, refreshOn ? refreshTtl * 1000 : 0)
      await store.set(notBeforeKey(sub), String(notBefore), ttl, DURABLE)
      if (events['token:revoked-all'].hasSubscribers) events['token:revoked-all'].publish({ ...where(options?.request), userId: sub })
    }
  }

  async function revocationOf (claims: Record<string, unknown>): Promise<RevocationState> {
    const sub = claims.sub as string
    const [revoked, notBefore] = await readMany([revokedKey(sub, claims.jti as string), notBeforeKey(sub)])
    // Any value at all means revoked: the safe reading of a key we only ever set to '1'.
    if (revoked !== null && revoked !== undefined) return 'revoked'
    if ((claims.iat as number) < notBeforeOf(notBefore)) return 'logged-out'
    return undefined
  }

  return { helpers, revocationOf }
}
