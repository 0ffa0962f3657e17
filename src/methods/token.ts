import { createHash, createPrivateKey, createPublicKey, KeyObject, randomBytes, randomUUID } from 'node:crypto'
import type { FastifyJWTOptions, JWT } from '@fastify/jwt'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BadRequestError, MESSAGE_INVALID, MESSAGE_MISSING, MultiauthOptionError, UnauthorizedError } from '../errors.js'
import { authorizationParam, DEFAULT_MAX_CREDENTIAL_LENGTH } from '../headers.js'
import { cacheOptions, ExpiringLru } from '../expiring-lru.js'
import type { VerifiedCredentialCacheOptions } from '../expiring-lru.js'
import type { MultiauthStore } from '../stores/types.js'
import { loadPeers } from '../peer.js'
import { AuthFailure, isThenable } from '../types.js'
import type { AuthMethod, AuthSuccess, Awaitable, Falsy, MethodName, MultiauthUser } from '../types.js'
import {
  checkBoolean, checkFunction, checkKeys, checkObject, checkPositiveInteger, checkQuotable, checkString, isPlainObject
} from '../validate.js'
import type { MethodContext } from './context.js'


// @fastify/jwt types `request.user` as its own payload type; ours is the application's user.
// Pointing its `FastifyJWT.user` at the same type lets both declarations of
// `FastifyRequest.user` agree, whether or not the application also uses @fastify/jwt.
declare module '@fastify/jwt' {
  interface FastifyJWT {
    user: MultiauthUser | null
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Token helpers (issue, refresh, revoke). Present when the `token` option is given. */
    authTokens: AuthTokens
  }
}

/** A PEM string or Buffer, or a `KeyObject`. */
export type TokenKeyMaterial = string | Buffer | KeyObject

export interface TokenKey {
  /** Key id, written to the `kid` header of the tokens this key signs. Required when `keys` has several entries. */
  kid?: string
  /** HS256 shared secret of at least 32 bytes (256 bits). */
  secret?: string | Buffer
  /** RS256 (RSA ≥ 2048 bits), ES256/ES384/ES512 (P-256/384/521) or EdDSA (Ed25519): the algorithm follows the key type. */
  publicKey?: TokenKeyMaterial
  /** The private half of the pair; only needed on the key that signs. */
  privateKey?: TokenKeyMaterial
}

/** Claims of a verified access token, as `lookup` receives them. */
export interface TokenClaims {
  sub: string
  jti: string
  iat: number
  exp: number
  /** Space-separated scopes (RFC 8693 §4.2); they become `request.auth.scopes`. */
  scope?: string
  iss?: string
  aud?: string | string[]
  [claim: string]: unknown
}

/** What `claims(user)` returns: the subject and any claims of your own. `jti`, `iat`, `exp`, `iss`, `aud` are set by the plugin. */
export interface TokenClaimsInput {
  sub: string
  scope?: string | readonly string[]
  [claim: string]: unknown
}

export interface TokenOptions {
  /** HS256 shared secret, at least 32 bytes. Shorthand for `keys: [{ secret }]`. */
  secret?: string | Buffer
  /** Key pair shorthand for `keys: [{ publicKey, privateKey }]`. */
  publicKey?: TokenKeyMaterial
  privateKey?: TokenKeyMaterial
  /** Key rotation: every key verifies (chosen by the token's `kid`); the FIRST key signs. */
  keys?: readonly TokenKey[]
  /** Maps verified claims to your user (seed 2's `verify_auth_token`); falsy = refused (e.g. a deleted user). */
  lookup: (claims: TokenClaims, request: FastifyRequest) => Awaitable<MultiauthUser | Falsy>
  /** The claims to put in a token for a user. Default: `{ sub: String(user.id) }`. */
  claims?: (user: MultiauthUser, request: FastifyRequest | undefined) => Awaitable<TokenClaimsInput>
  /** Written to `iss` and required on verification when set. */
  issuer?: string
  /** Written to `aud` and required on verification when set (any listed value is accepted). */
  audience?: string | readonly string[]
  /** Accepted clock skew for `exp`/`nbf`/`iat`, in seconds. Default 30. */
  clockTolerance?: number
  /** Access-token lifetime in seconds (the `expiration` of `POST /tokens`). Default 900 (15 minutes). */
  expiresIn?: number
  /** Rotating refresh tokens with reuse detection. `true` or `{ expiresIn }` (seconds, default 1209600 = 14 days). Default off. */
  refresh?: boolean | { expiresIn?: number }
  /** Revocation by `jti` and per-user "log out everywhere", checked in the store on every request. Default off. */
  revocation?: boolean
  /** Opt-in routes `POST {prefix}`, `{prefix}/refresh`, `{prefix}/revoke`. `true` or `{ prefix, methods }`. */
  routes?: boolean | TokenRoutesOptions
  /** Longest Authorization header accepted, in characters (default 8192); longer is a 400. */
  maxLength?: number
  /**
   * Remember access tokens whose signature and claims already verified, for `ttl` ms (never past
   * their `exp`) and at most `max` of them, so a client reusing its token skips the signature
   * check. Revocation and `lookup` still run on every request. Off by default.
   * See docs/tokens.md, "Verified-token cache".
   */
  cache?: Partial<VerifiedCredentialCacheOptions>
}

export interface TokenRoutesOptions {
  /** Default `/tokens`. */
  prefix?: string
  /** Methods that may obtain a token: password-based only. Default: those of `basic`, `session` that are configured. */
  methods?: ReadonlyArray<'basic' | 'session'>
}

/** The body of `POST /tokens` and `/tokens/refresh`, and what `issue`/`refresh` resolve. */
export interface IssuedTokens {
  /** The access token (a JWT). */
  token: string
  /** Its lifetime in seconds. */
  expiration: number
  /** Present when refresh tokens are on. Opaque; store it like a password. */
  refresh_token?: string
}

/** `app.authTokens`: helpers for applications that write their own login/logout routes. */
export interface AuthTokens {
  /** Signs an access token for `user` (and starts a refresh-token family when refresh is on). */
  issue (user: MultiauthUser, request?: FastifyRequest): Promise<IssuedTokens>
  /** Rotates a refresh token. Resolves `null` when it is refused (unknown, expired, revoked, reused: a reuse revokes its whole family). */
  refresh (refreshToken: string, request: FastifyRequest): Promise<IssuedTokens | null>
  /** Revokes one access token until it expires, by its verified claims (`request.auth.claims`). Needs `revocation`. */
  revoke (claims: Record<string, unknown>): Promise<void>
  /** Revokes a refresh token and every token rotated from the same login (its family). Unknown tokens are ignored. */
  revokeRefreshToken (refreshToken: string): Promise<void>
  /** "Log out everywhere": every access token (with `revocation`) and refresh token issued to `sub` until now stops working. */
  revokeAll (sub: string): Promise<void>
}

const OPTION_KEYS = [
  'secret', 'publicKey', 'privateKey', 'keys', 'lookup', 'claims', 'issuer', 'audience', 'clockTolerance',
  'expiresIn', 'refresh', 'revocation', 'routes', 'maxLength', 'cache'
]
const KEY_KEYS = ['kid', 'secret', 'publicKey', 'privateKey']
const MIN_SECRET_BYTES = 32
const DEFAULT_ACCESS_TTL = 900
const DEFAULT_REFRESH_TTL = 14 * 24 * 3600
const DEFAULT_CLOCK_TOLERANCE = 30
/** RFC 9068 / RFC 8725 §3.11 explicit typing: a JWT of another kind (an ID token, say) is never taken for an access token. */
const ACCESS_TOKEN_TYP = 'at+jwt'
const REFRESH_TOKEN_MAX_LENGTH = 256
const NO_SCOPES: readonly string[] = Object.freeze([])

// Store keys. Refresh tokens are stored by their SHA-256, so a store dump holds no usable token.
const REVOKED = 'tok:rv:' // + jti → access token revoked until its expiry
const NOT_BEFORE = 'tok:nb:' // + sub → tokens issued before this second are revoked ("log out everywhere")
const REFRESH = 'tok:rt:' // + hash → refresh token record
const REFRESH_USED = 'tok:ru:' // + hash → set once, by the refresh that consumed it
const FAMILY_REVOKED = 'tok:rf:' // + family id → every refresh token of that login is dead

const MALFORMED = new AuthFailure('malformed token')
const UNKNOWN_KID = new AuthFailure('token kid matches no configured key')
const REVOKED_TOKEN = new AuthFailure('token revoked')
const LOGGED_OUT = new AuthFailure('token issued before the user logged out everywhere')
const NO_USER = new AuthFailure('lookup returned no user for the token claims')
const BAD_CLAIMS = new AuthFailure('token sub/jti claims are not strings')
const TOKEN_FAILURES = new Map<string, AuthFailure>([
  ['FAST_JWT_EXPIRED', new AuthFailure('token expired')],
  ['FAST_JWT_INACTIVE', new AuthFailure('token not yet valid (nbf)')],
  ['FAST_JWT_INVALID_SIGNATURE', new AuthFailure('invalid token signature')],
  ['FAST_JWT_INVALID_ALGORITHM', new AuthFailure('token algorithm not allowed for this key')],
  ['FAST_JWT_MISSING_SIGNATURE', new AuthFailure('unsigned token')],
  ['FAST_JWT_INVALID_CLAIM_VALUE', new AuthFailure('token iss/aud (or another claim) not accepted')],
  ['FAST_JWT_MISSING_REQUIRED_CLAIM', new AuthFailure('token lacks a required claim')],
  ['FAST_JWT_INVALID_TYPE', new AuthFailure('token is not an access token (typ)')],
  ['FAST_JWT_MALFORMED', MALFORMED]
])
const OTHER_TOKEN_ERROR = new AuthFailure('token refused by the verifier')

type Algorithm = 'HS256' | 'RS256' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

interface PreparedKey {
  kid: string | undefined
  algorithm: Algorithm
  /** What @fastify/jwt receives as `secret`. */
  secret: FastifyJWTOptions['secret']
  canSign: boolean
  /** Filled by `setup`. */
  jwt?: JWT
}

const EC_ALGORITHMS: Record<string, Algorithm> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }

/** The one algorithm a public key may verify, pinned from its type (RFC 8725 §3.1). */
function algorithmFor (key: KeyObject, path: string): Algorithm {
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case 'rsa':
      if ((details.modulusLength ?? 0) < 2048) throw new MultiauthOptionError(`${path}: RSA keys must be at least 2048 bits`)
      return 'RS256'
    case 'ec': {
      const algorithm = EC_ALGORITHMS[details.namedCurve ?? '']
      if (algorithm === undefined) throw new MultiauthOptionError(`${path}: EC keys must use P-256, P-384 or P-521`)
      return algorithm
    }
    case 'ed25519':
      return 'EdDSA'
    default:
      throw new MultiauthOptionError(`${path}: unsupported key type "${String(key.asymmetricKeyType)}" (use RSA, EC P-256 or Ed25519)`)
  }
}

function toKeyObject (material: unknown, kind: 'public' | 'private', path: string): KeyObject {
  if (material instanceof KeyObject) {
    if (material.type === kind) return material
    if (kind === 'public' && material.type === 'private') return createPublicKey(material)
    throw new MultiauthOptionError(`${path} must be a ${kind} key, got a ${material.type} KeyObject`)
  }
  if (typeof material !== 'string' && !Buffer.isBuffer(material)) {
    throw new MultiauthOptionError(`${path} must be a PEM string, a Buffer or a KeyObject`)
  }
  try {
    return kind === 'public' ? createPublicKey(material) : createPrivateKey(material)
  } catch (err) {
    throw new MultiauthOptionError(`${path} is not a valid ${kind} key: ${(err as Error).message}`)
  }
}

function prepareKey (raw: TokenKey, path: string): PreparedKey {
  const { kid, secret, publicKey, privateKey } = raw
  if (kid !== undefined) {
    checkString(kid, `${path}.kid`)
    checkQuotable(kid, `${path}.kid`)
  }
  if (secret !== undefined) {
    if (publicKey !== undefined || privateKey !== undefined) {
      throw new MultiauthOptionError(`${path}: give either secret (HS256) or publicKey/privateKey, not both`)
    }
    if (typeof secret !== 'string' && !Buffer.isBuffer(secret)) throw new MultiauthOptionError(`${path}.secret must be a string or a Buffer`)
    const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret)
    if (bytes.length < MIN_SECRET_BYTES) {
      throw new MultiauthOptionError(
        `${path}.secret must be at least ${MIN_SECRET_BYTES} bytes (256 bits) for HS256, got ${bytes.length}; ` +
        'generate one with: node -e "console.log(require(\'node:crypto\').randomBytes(32).toString(\'base64url\'))"'
      )
    }
    // A public key used as an HMAC secret is the classic algorithm-confusion attack (RFC 8725 §2.1).
    if (bytes.subarray(0, 10).toString('latin1') === '-----BEGIN') {
      throw new MultiauthOptionError(`${path}.secret looks like a PEM key; pass key pairs as publicKey/privateKey`)
    }
    return { kid, algorithm: 'HS256', secret: bytes, canSign: true }
  }
  if (publicKey === undefined && privateKey === undefined) {
    throw new MultiauthOptionError(`${path} needs a secret (HS256) or a publicKey/privateKey pair`)
  }
  const privateObject = privateKey === undefined ? undefined : toKeyObject(privateKey, 'private', `${path}.privateKey`)
  const publicObject = publicKey === undefined
    ? createPublicKey(privateObject as KeyObject)
    : toKeyObject(publicKey, 'public', `${path}.publicKey`)
  if (publicObject.type !== 'public') throw new MultiauthOptionError(`${path}.publicKey must be a public key`)
  const algorithm = algorithmFor(publicObject, `${path}.publicKey`)
  const publicPem = publicObject.export({ type: 'spki', format: 'pem' }) as string
  if (privateObject === undefined) return { kid, algorithm, secret: { public: publicPem }, canSign: false }
  if (createPublicKey(privateObject).export({ type: 'spki', format: 'pem' }) !== publicPem) {
    throw new MultiauthOptionError(`${path}: privateKey and publicKey are not the same pair`)
  }
  const privatePem = privateObject.export({ type: 'pkcs8', format: 'pem' }) as string
  return { kid, algorithm, secret: { public: publicPem, private: privatePem }, canSign: true }
}

function prepareKeys (options: TokenOptions): PreparedKey[] {
  const { secret, publicKey, privateKey, keys } = options
  const shorthand = secret !== undefined || publicKey !== undefined || privateKey !== undefined
  if (keys === undefined) {
    if (!shorthand) throw new MultiauthOptionError('token needs token.secret (HS256, at least 32 bytes), token.publicKey/privateKey, or token.keys')
    return [prepareKey({ secret, publicKey, privateKey }, 'token')]
  }
  if (shorthand) throw new MultiauthOptionError('token.keys replaces token.secret/publicKey/privateKey; give one or the other')
  if (!Array.isArray(keys) || keys.length === 0) throw new MultiauthOptionError('token.keys must be a non-empty array')
  const prepared = keys.map((key: unknown, i) => {
    const path = `token.keys[${i}]`
    checkKeys(checkObject(key, path), KEY_KEYS, path)
    return prepareKey(key as TokenKey, path)
  })
  if (prepared.length > 1) {
    const kids = new Set<string>()
    prepared.forEach((key, i) => {
      if (key.kid === undefined) throw new MultiauthOptionError(`token.keys[${i}].kid is required when there are several keys`)
      if (kids.has(key.kid)) throw new MultiauthOptionError(`token.keys[${i}].kid "${key.kid}" is used twice`)
      kids.add(key.kid)
    })
  }
  return prepared
}

function checkSeconds (value: unknown, path: string): void {
  checkPositiveInteger(value, path)
}

/** `scope` claim (space-separated string, or an array some issuers use) → scope list. */
function scopesOf (claims: Record<string, unknown>): readonly string[] {
  const scope = claims.scope
  if (typeof scope === 'string') return scope.length === 0 ? NO_SCOPES : scope.split(' ').filter((s) => s.length > 0)
  if (Array.isArray(scope) && scope.every((s) => typeof s === 'string')) return scope as string[]
  return NO_SCOPES
}

function digest (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

function defaultClaims (user: MultiauthUser): TokenClaimsInput {
  const id = (user as { id?: unknown }).id
  if ((typeof id === 'string' && id.length > 0) || typeof id === 'number') return { sub: String(id) }
  throw new TypeError('fastify-multiauth: the user has no string or number `id`; pass token.claims(user) returning { sub }')
}

interface RefreshRecord {
  /** Claims from `claims(user)` at login, handed to `lookup` on refresh. */
  c: TokenClaimsInput
  /** Family id: every refresh token rotated from one login. */
  f: string
  /** When the family started, in seconds: compared with the user's "log out everywhere" time. */
  t: number
}

export function createTokenMethod (raw: unknown, ctx: MethodContext): AuthMethod {
  const [fastifyJwt] = loadPeers('the "token" option', ['@fastify/jwt'])
  const options = checkObject(raw, 'token') as unknown as TokenOptions
  checkKeys(options as unknown as Record<string, unknown>, OPTION_KEYS, 'token')
  checkFunction(options.lookup, 'token.lookup')
  checkFunction(options.claims, 'token.claims', false)
  checkString(options.issuer, 'token.issuer', false)
  if (options.audience !== undefined && !(Array.isArray(options.audience) && options.audience.length > 0)) {
    checkString(options.audience, 'token.audience')
  }
  if (Array.isArray(options.audience)) options.audience.forEach((a, i) => checkString(a, `token.audience[${i}]`))
  checkSeconds(options.expiresIn, 'token.expiresIn')
  if (options.clockTolerance !== undefined && (!Number.isSafeInteger(options.clockTolerance) || options.clockTolerance < 0 || options.clockTolerance > 300)) {
    throw new MultiauthOptionError('token.clockTolerance must be an integer between 0 and 300 (seconds)')
  }
  checkBoolean(options.revocation, 'token.revocation')
  checkPositiveInteger(options.maxLength, 'token.maxLength')
  if (options.refresh !== undefined && typeof options.refresh !== 'boolean') {
    checkKeys(checkObject(options.refresh, 'token.refresh'), ['expiresIn'], 'token.refresh')
    checkSeconds(options.refresh.expiresIn, 'token.refresh.expiresIn')
  }
  const keys = prepareKeys(options)
  const { max: cacheMax, ttl: cacheTtl } = options.cache === undefined ? { max: 0, ttl: 0 } : cacheOptions(options.cache, 'token.cache')
  const verifiedTokens = options.cache === undefined ? undefined : new ExpiringLru<Record<string, unknown>>(cacheMax)
  const signingKey = keys[0] as PreparedKey
  const byKid = keys.length > 1 ? new Map(keys.map((k) => [k.kid as string, k])) : undefined

  const { lookup, claims: claimsFor, issuer, revocation = false } = options
  const audience = options.audience === undefined ? undefined : (typeof options.audience === 'string' ? options.audience : [...options.audience])
  const accessTtl = options.expiresIn ?? DEFAULT_ACCESS_TTL
  const refreshOn = options.refresh !== undefined && options.refresh !== false
  const refreshTtl = typeof options.refresh === 'object' ? (options.refresh.expiresIn ?? DEFAULT_REFRESH_TTL) : DEFAULT_REFRESH_TTL
  const toleranceMs = (options.clockTolerance ?? DEFAULT_CLOCK_TOLERANCE) * 1000
  const maxLength = options.maxLength ?? DEFAULT_MAX_CREDENTIAL_LENGTH
  // Validated at registration; the login methods are resolved in setup, once every method exists.
  prepareRoutes(options.routes, undefined, signingKey.canSign)
  const store: MultiauthStore = ctx.store
  const readMany = store.getMany !== undefined
    ? async (k: readonly string[]) => await (store.getMany as NonNullable<MultiauthStore['getMany']>)(k)
    : async (k: readonly string[]) => await Promise.all(k.map(async (key) => await store.get(key)))

  const challenge = `Bearer realm="${ctx.realm}"`
  const invalidChallenge = `${challenge}, error="invalid_token", error_description="The access token is invalid, expired or revoked"`
  const requiredClaims = ['sub', 'jti', 'exp', 'iat']
  if (issuer !== undefined) requiredClaims.push('iss')
  if (audience !== undefined) requiredClaims.push('aud')

  /** Checks signature, algorithm, typ and registered claims with the key the token names. */
  function checkSignature (token: string): Record<string, unknown> | AuthFailure {
    let key = signingKey
    if (byKid !== undefined) {
      let kid: unknown
      try {
        kid = (signingKey.jwt as JWT).decode<{ header: { kid?: unknown } }>(token)?.header.kid
      } catch {
        return MALFORMED
      }
      const found = typeof kid === 'string' ? byKid.get(kid) : undefined
      if (found === undefined) return UNKNOWN_KID
      key = found
    }
    try {
      return (key.jwt as JWT).verify<Record<string, unknown>>(token)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (typeof code !== 'string' || !code.startsWith('FAST_JWT_')) throw err
      return TOKEN_FAILURES.get(code) ?? OTHER_TOKEN_ERROR
    }
  }

  function found (user: MultiauthUser | Falsy, claims: Record<string, unknown>): AuthSuccess | AuthFailure {
    return user ? { user, method: 'token', scopes: scopesOf(claims), claims } : NO_USER
  }

  /** `lookup`, without a promise when it answers synchronously (then the guard needs none either). */
  function lookupUser (claims: Record<string, unknown>, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    const user = lookup(claims as TokenClaims, request)
    return isThenable(user) ? Promise.resolve(user).then((value) => found(value, claims)) : found(user, claims)
  }

  async function checkRevoked (claims: Record<string, unknown>, request: FastifyRequest): Promise<AuthSuccess | AuthFailure> {
    const { sub, jti, iat } = claims
    // One round trip: this token's jti, and the user's "log out everywhere" time.
    const [revoked, notBefore] = await readMany([REVOKED + (jti as string), NOT_BEFORE + (sub as string)])
    if (revoked !== null && revoked !== undefined) return REVOKED_TOKEN
    if (notBefore !== null && notBefore !== undefined && (iat as number) < Number(notBefore)) return LOGGED_OUT
    return await lookupUser(claims, request)
  }

  /** Signature, algorithm, typ and claims: from the cache when this exact token already passed them. */
  function verifiedClaims (token: string): Record<string, unknown> | AuthFailure {
    const cached = verifiedTokens?.get(token)
    if (cached !== undefined) return cached
    const claims = checkSignature(token)
    if (claims instanceof AuthFailure) return claims
    if (typeof claims.sub !== 'string' || typeof claims.jti !== 'string') return BAD_CLAIMS
    if (verifiedTokens !== undefined) {
      // Shared by every request that presents this token: frozen, so no request changes another's claims.
      Object.freeze(claims)
      // Until the TTL ends or the token would stop verifying (exp, with the clock tolerance), whichever is first.
      const expires = Math.min(Date.now() + cacheTtl, (claims.exp as number) * 1000 + toleranceMs)
      verifiedTokens.set(token, claims, expires)
    }
    return claims
  }

  function verify (token: string, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    const claims = verifiedClaims(token)
    if (claims instanceof AuthFailure) return claims
    return revocation ? checkRevoked(claims, request) : lookupUser(claims, request)
  }

  // ---- issuing, refreshing, revoking --------------------------------------------------

  function nowSeconds (): number {
    return Math.floor(Date.now() / 1000)
  }

  async function claimsOf (user: MultiauthUser, request: FastifyRequest | undefined): Promise<TokenClaimsInput> {
    const claims = claimsFor === undefined ? defaultClaims(user) : await claimsFor(user, request)
    if (!isPlainObject(claims) || typeof claims.sub !== 'string' || claims.sub.length === 0) {
      throw new TypeError('fastify-multiauth: token.claims(user) must return an object with a non-empty string `sub`')
    }
    return claims
  }

  function signAccessToken (claims: TokenClaimsInput): string {
    if (!signingKey.canSign) throw new TypeError('fastify-multiauth: the first of token.keys has no secret or privateKey, so tokens cannot be issued')
    const { scope } = claims
    const now = nowSeconds()
    return (signingKey.jwt as JWT).sign({
      ...claims,
      scope: Array.isArray(scope) ? scope.join(' ') : scope,
      jti: randomUUID(),
      iat: now,
      exp: now + accessTtl
    })
  }

  async function startRefresh (claims: TokenClaimsInput, family: string, familyStart: number): Promise<string> {
    const refreshToken = randomBytes(32).toString('base64url')
    const record: RefreshRecord = { c: claims, f: family, t: familyStart }
    await store.set(REFRESH + digest(refreshToken), JSON.stringify(record), refreshTtl * 1000)
    return refreshToken
  }

  async function issueFor (claims: TokenClaimsInput, family: string | undefined, familyStart: number): Promise<IssuedTokens> {
    const token = signAccessToken(claims)
    if (!refreshOn) return { token, expiration: accessTtl }
    const refreshToken = await startRefresh(claims, family ?? randomUUID(), familyStart)
    return { token, expiration: accessTtl, refresh_token: refreshToken }
  }

  async function readRefresh (refreshToken: unknown): Promise<{ id: string, record: RefreshRecord } | undefined> {
    if (typeof refreshToken !== 'string' || refreshToken.length === 0 || refreshToken.length > REFRESH_TOKEN_MAX_LENGTH) return undefined
    const id = digest(refreshToken)
    const stored = await store.get(REFRESH + id)
    return stored === null ? undefined : { id, record: JSON.parse(stored) as RefreshRecord }
  }

  const helpers: AuthTokens = {
    async issue (user, request) {
      return await issueFor(await claimsOf(user, request), undefined, nowSeconds())
    },

    async refresh (refreshToken, request) {
      if (!refreshOn) throw new TypeError('fastify-multiauth: refresh tokens are off; set token.refresh')
      const refuse = (reason: string): null => {
        request.log.info({ authMethod: 'token', reason }, 'multiauth: refresh token refused')
        return null
      }
      const found = await readRefresh(refreshToken)
      if (found === undefined) return refuse('unknown or expired refresh token')
      const { id, record } = found
      // Single use: the first refresh to set this marker wins; anyone presenting the token
      // again is either the attacker or the victim, so the whole family dies (RFC 9700 §4.14.2).
      if (!(await store.setIfAbsent(REFRESH_USED + id, '1', refreshTtl * 1000))) {
        await store.set(FAMILY_REVOKED + record.f, '1', refreshTtl * 1000)
        request.log.warn({ authMethod: 'token', family: record.f }, 'multiauth: refresh token reused; its family is revoked')
        return null
      }
      const [familyRevoked, notBefore] = await readMany([FAMILY_REVOKED + record.f, NOT_BEFORE + record.c.sub])
      if (familyRevoked !== null && familyRevoked !== undefined) return refuse('refresh token family revoked')
      if (notBefore !== null && notBefore !== undefined && record.t < Number(notBefore)) return refuse('user logged out everywhere')
      const user = await lookup(record.c as TokenClaims, request)
      if (!user) return refuse('lookup returned no user for the refresh token')
      return await issueFor(await claimsOf(user, request), record.f, record.t)
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

  // ---- setup: @fastify/jwt per key, decorator, routes -----------------------------

  function jwtOptions (key: PreparedKey, i: number): FastifyJWTOptions {
    return {
      namespace: `multiauth${i}`,
      secret: key.secret,
      decode: { complete: true },
      sign: {
        algorithm: key.algorithm,
        kid: key.kid,
        header: { alg: key.algorithm, typ: ACCESS_TOKEN_TYP },
        ...(issuer === undefined ? {} : { iss: issuer }),
        ...(audience === undefined ? {} : { aud: audience })
      },
      verify: {
        algorithms: [key.algorithm],
        checkTyp: ACCESS_TOKEN_TYP,
        requiredClaims,
        clockTolerance: toleranceMs,
        ...(issuer === undefined ? {} : { allowedIss: issuer }),
        ...(audience === undefined ? {} : { allowedAud: audience })
      }
    }
  }

  async function setup (app: FastifyInstance): Promise<void> {
    // @fastify/jwt lives in a child context of its own: nothing of it (app.jwt,
    // request.user, jwtVerify) reaches the application, which may register its own.
    await app.register(async function multiauthJwt (child) {
      const namespaces = Object.create(null) as Record<string, JWT>
      if (child.hasDecorator('jwt')) {
        // Inherited from the application's own @fastify/jwt: shadow it, so ours are never added to its object.
        Object.defineProperty(child, 'jwt', { value: namespaces })
      } else {
        child.decorate('jwt', namespaces as unknown as JWT)
      }
      for (const [i, key] of keys.entries()) {
        await child.register(fastifyJwt, jwtOptions(key, i))
        key.jwt = namespaces[`multiauth${i}`]
      }
    })
    app.decorate('authTokens', helpers)
    const routes = prepareRoutes(options.routes, ctx, signingKey.canSign)
    if (routes !== undefined) app.register(tokenRoutes(ctx, helpers, routes, challenge, invalidChallenge, refreshOn, revocation), { prefix: routes.prefix })
  }

  return {
    name: 'token',
    challenge,
    invalidChallenge,
    forbiddenChallenge: `${challenge}, error="insufficient_scope"`,
    extract (request) {
      const token = authorizationParam(request, 'bearer', maxLength)
      if (token === undefined) {
        // RFC 6750 §2.3 allows access_token in the URI; we never accept it (it ends up in logs and Referer).
        const query = request.query as Record<string, unknown> | null | undefined
        if (query?.access_token !== undefined) throw new BadRequestError('bearer tokens in the query string are refused; send Authorization: Bearer')
        return undefined
      }
      if (token.length === 0) throw new BadRequestError('empty bearer token')
      return token
    },
    verify: verify as AuthMethod['verify'],
    setup,
    securitySchemes: () => ({ token: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } })
  }
}

// ---- routes --------------------------------------------------------------------------

interface PreparedRoutes { prefix: string, methods: MethodName[] }

/** Without `ctx`: checks the options only (the factory runs before later methods such as `session` exist). */
function prepareRoutes (raw: unknown, ctx: MethodContext | undefined, canSign: boolean): PreparedRoutes | undefined {
  if (raw === undefined || raw === false) return undefined
  const options = raw === true ? {} : checkObject(raw, 'token.routes') as TokenRoutesOptions
  checkKeys(options as Record<string, unknown>, ['prefix', 'methods'], 'token.routes')
  const prefix = options.prefix ?? '/tokens'
  checkString(prefix, 'token.routes.prefix')
  if (!prefix.startsWith('/')) throw new MultiauthOptionError('token.routes.prefix must start with "/"')
  if (!canSign) throw new MultiauthOptionError('token.routes need a signing key: the first of token.keys has no secret or privateKey')
  let methods: MethodName[]
  const configured = (m: MethodName): boolean => ctx === undefined || ctx.methods.has(m)
  if (options.methods === undefined) {
    methods = (['basic', 'session'] as const).filter(configured)
    if (methods.length === 0) throw new MultiauthOptionError('token.routes need a password-based method to log in with: configure basic (or session)')
  } else {
    if (!Array.isArray(options.methods) || options.methods.length === 0) throw new MultiauthOptionError('token.routes.methods must be a non-empty array')
    methods = options.methods.map((m: unknown) => {
      // A token must never mint a token (seed 2), and an API key is not a login.
      if (m !== 'basic' && m !== 'session') throw new MultiauthOptionError(`token.routes.methods: "${String(m)}" cannot obtain tokens (allowed: basic, session)`)
      if (!configured(m)) throw new MultiauthOptionError(`token.routes.methods: "${m}" is not configured`)
      return m
    })
  }
  return { prefix, methods }
}

const ISSUED_SCHEMA = {
  type: 'object',
  required: ['token', 'expiration'],
  properties: {
    token: { type: 'string', description: 'Access token (JWT), sent as `Authorization: Bearer <token>`' },
    expiration: { type: 'integer', description: 'Access-token lifetime in seconds' },
    refresh_token: { type: 'string', description: 'Opaque refresh token (when refresh tokens are on); single use' }
  }
} as const
const ERROR_SCHEMA = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, error: { type: 'string' }, message: { type: 'string' } }
} as const
const REFRESH_BODY = {
  type: 'object',
  required: ['refresh_token'],
  additionalProperties: false,
  properties: { refresh_token: { type: 'string', minLength: 1, maxLength: REFRESH_TOKEN_MAX_LENGTH } }
} as const
const REVOKE_BODY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    refresh_token: { type: 'string', minLength: 1, maxLength: REFRESH_TOKEN_MAX_LENGTH },
    all: { type: 'boolean', description: 'Log out everywhere: revoke every token of the authenticated user' }
  }
} as const

function tokenRoutes (
  ctx: MethodContext, helpers: AuthTokens, routes: PreparedRoutes,
  challenge: string, invalidChallenge: string, refreshOn: boolean, revocation: boolean
) {
  const loginChallenges = routes.methods.flatMap((m) => {
    const c = ctx.methods.get(m)?.challenge
    return c === undefined ? [] : [c]
  })

  function refuse (reply: FastifyReply, challenges: string | string[], message: string): Error {
    reply.header('www-authenticate', challenges)
    return new UnauthorizedError(message)
  }

  return async function multiauthTokenRoutes (app: FastifyInstance): Promise<void> {
    app.post('/', {
      onRequest: app.authGuard(routes.methods),
      schema: {
        summary: 'Obtain an access token',
        description: `Needs a password-authenticated request (${routes.methods.join(' or ')}); a request authenticated by a token is refused.`,
        response: { 200: ISSUED_SCHEMA, 401: ERROR_SCHEMA }
      }
    }, async (request, reply) => {
      // Seed 2: a token cannot mint a token (Basic with allowToken reports method 'token').
      if (request.auth === null || request.auth.method === 'token') throw refuse(reply, loginChallenges, MESSAGE_INVALID)
      return await helpers.issue(request.user as MultiauthUser, request)
    })

    if (refreshOn) {
      app.post('/refresh', {
        schema: {
          summary: 'Rotate a refresh token',
          description: 'Returns a new access token and a new refresh token. Presenting a refresh token twice revokes every token of its login.',
          body: REFRESH_BODY,
          response: { 200: ISSUED_SCHEMA, 401: ERROR_SCHEMA }
        }
      }, async (request, reply) => {
        const issued = await helpers.refresh((request.body as { refresh_token: string }).refresh_token, request)
        if (issued === null) throw refuse(reply, invalidChallenge, MESSAGE_INVALID)
        return issued
      })
    }

    if (refreshOn || revocation) {
      app.post('/revoke', {
        onRequest: app.authGuard({ methods: ['token'], optional: true }),
        // The body is optional (a Bearer token alone logs that token out); validate `{}` then.
        preValidation: async (request) => { request.body ??= {} },
        schema: {
          summary: 'Log out',
          description: 'Revokes the presented access token (Authorization: Bearer) and/or a refresh token and its family; `all: true` revokes every token of the user.',
          body: REVOKE_BODY,
          response: { 204: { type: 'null', description: 'Revoked' }, 401: ERROR_SCHEMA }
        }
      }, async (request, reply) => {
        const body = (request.body ?? {}) as { refresh_token?: string, all?: boolean }
        const auth = request.auth
        if (auth === null && (body.refresh_token === undefined || body.all === true)) {
          throw refuse(reply, challenge, MESSAGE_MISSING)
        }
        if (!revocation && body.refresh_token === undefined && body.all !== true) {
          // Without revocation an access token cannot be revoked; answering 204 would be a lie.
          throw new BadRequestError('send refresh_token: access tokens cannot be revoked while token.revocation is off')
        }
        if (auth !== null && auth.method === 'token') {
          if (revocation) await helpers.revoke(auth.claims)
          if (body.all === true) await helpers.revokeAll(auth.claims.sub as string)
        }
        if (body.refresh_token !== undefined) await helpers.revokeRefreshToken(body.refresh_token)
        return await reply.code(204).send()
      })
    }
  }
}
