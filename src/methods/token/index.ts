import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import { BadRequestError, MultiauthOptionError, NotConfiguredError } from '../../core/errors.js'
import { authorizationParam, DEFAULT_MAX_CREDENTIAL_LENGTH } from '../../core/headers.js'
import { cacheOptions, ExpiringLru } from '../../lib/expiring-lru.js'
import { AuthFailure, isThenable } from '../../core/outcome.js'
import type { AuthMethod, AuthSuccess, Falsy, MultiauthUser } from '../../core/types.js'
import { checkBoolean, checkFunction, checkKeys, checkObject, checkPositiveInteger, checkString } from '../../core/validate.js'
import type { MethodContext } from '../context.js'
import { durationSeconds } from '../../core/durations.js'
import { loadFastJwt, loadPeers } from '../../core/peer.js'
import { prepareIssuers } from './issuers.js'
import type { PreparedIssuer, RemoteClaims } from './issuers.js'
import { prepareKeys } from './keys.js'
import type { PreparedKey } from './keys.js'
import type { JwtNamespace, JwtPluginOptions, JwtVerifier } from './jwt.js'
import { createTokenLifecycle } from './lifecycle.js'
import { prepareRoutes, tokenRoutes } from './routes.js'
import { preparePublishedKeys, publishKeysRoutes } from './published-keys.js'
import type { AuthTokens, TokenClaims, TokenOptions } from './types.js'

// The `token` method: bearer access tokens (JWT, RFC 9068 profile) checked on every request.
// Keys: ./keys.ts; what the store holds and `app.authTokens`: ./lifecycle.ts; routes: ./routes.ts.

export type * from './types.js'

/** `app.authTokens` when the `token` method is not configured: every helper is a 500, never a silent pass. */
export const tokensNotConfigured: AuthTokens = {
  async issue () { throw new NotConfiguredError('token') },
  async refresh () { throw new NotConfiguredError('token') },
  async revoke () { throw new NotConfiguredError('token') },
  async revokeRefreshToken () { throw new NotConfiguredError('token') },
  async revokeAll () { throw new NotConfiguredError('token') }
}

const OPTION_KEYS = [
  'secret', 'publicKey', 'privateKey', 'keys', 'findUser', 'claims', 'issuer', 'audience', 'clockTolerance',
  'expiresIn', 'refresh', 'revocation', 'routes', 'maxLength', 'cache', 'publishKeys', 'issuers'
]
/** Seconds (the lifetimes below are kept in whole seconds, as JWT `exp` is). */
const DEFAULT_ACCESS_TTL = 900
const DEFAULT_REFRESH_TTL = 14 * 24 * 3600
/** Live logins (refresh families) per user: phones, laptops, browsers — and a bound on what one user can store. */
const DEFAULT_MAX_FAMILIES = 50
const DEFAULT_CLOCK_TOLERANCE = 30
/** RFC 9068 / RFC 8725 §3.11 explicit typing: a JWT of another kind (an ID token, say) is never taken for an access token. */
const ACCESS_TOKEN_TYP = 'at+jwt'
const NO_SCOPES: readonly string[] = Object.freeze([])

const MALFORMED = new AuthFailure('malformed', 'malformed token')
const UNKNOWN_KID = new AuthFailure('unknown-kid', 'token kid matches no configured key')
const REVOKED_TOKEN = new AuthFailure('revoked', 'token revoked')
const LOGGED_OUT = new AuthFailure('logged-out', 'token issued before the user logged out everywhere')
const NO_USER = new AuthFailure('unknown-user', 'findUser returned no user for the token claims')
const BAD_CLAIMS = new AuthFailure('claims', 'token sub/jti/iat claims have the wrong type')
const TOKEN_FAILURES = new Map<string, AuthFailure>([
  ['FAST_JWT_EXPIRED', new AuthFailure('expired', 'token expired')],
  ['FAST_JWT_INACTIVE', new AuthFailure('not-yet-valid', 'token not yet valid (nbf)')],
  ['FAST_JWT_INVALID_SIGNATURE', new AuthFailure('invalid-signature', 'invalid token signature')],
  ['FAST_JWT_INVALID_ALGORITHM', new AuthFailure('algorithm', 'token algorithm not allowed for this key')],
  ['FAST_JWT_MISSING_SIGNATURE', new AuthFailure('algorithm', 'unsigned token')],
  ['FAST_JWT_INVALID_CLAIM_VALUE', new AuthFailure('claims', 'token iss/aud (or another claim) not accepted')],
  ['FAST_JWT_MISSING_REQUIRED_CLAIM', new AuthFailure('missing-claim', 'token lacks a required claim')],
  ['FAST_JWT_INVALID_TYPE', new AuthFailure('not-access-token', 'token is not an access token (typ)')],
  ['FAST_JWT_MALFORMED', MALFORMED]
])
const OTHER_TOKEN_ERROR = new AuthFailure('verifier', 'token refused by the verifier')
const UNTRUSTED_ISSUER = new AuthFailure('untrusted-issuer', 'token issuer not trusted')

/** `scope` claim (space-separated string, or an array some issuers use) → scope list. */
function scopesOf (claims: Record<string, unknown>): readonly string[] {
  const scope = claims.scope
  if (typeof scope === 'string') return scope.length === 0 ? NO_SCOPES : scope.split(' ').filter((s) => s.length > 0)
  if (Array.isArray(scope) && scope.every((s) => typeof s === 'string')) return scope as string[]
  return NO_SCOPES
}

/**
 * The `kid` of a token's header, read from the header segment alone: it only picks the key, whose
 * verifier then decodes and checks the whole token (so a token is decoded once, not twice).
 */
function headerKid (token: string): unknown {
  const dot = token.indexOf('.')
  if (dot <= 0) return MALFORMED
  try {
    const header: unknown = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8'))
    return typeof header === 'object' && header !== null ? (header as { kid?: unknown }).kid : MALFORMED
  } catch {
    return MALFORMED
  }
}

/** With only `token.issuers`: nothing to sign with, so every helper is a clear 500. */
const tokensVerifyOnly: AuthTokens = {
  async issue () { throw new NotConfiguredError('token signing (token.keys)') },
  async refresh () { throw new NotConfiguredError('token signing (token.keys)') },
  async revoke () { throw new NotConfiguredError('token revocation') },
  async revokeRefreshToken () { throw new NotConfiguredError('token refresh') },
  async revokeAll () { throw new NotConfiguredError('token revocation') }
}

export function createTokenMethod (raw: unknown, ctx: MethodContext): AuthMethod {
  const options = checkObject(raw, 'token') as unknown as TokenOptions
  const localKeys = options.issuers === undefined || options.keys !== undefined ||
    options.secret !== undefined || options.publicKey !== undefined || options.privateKey !== undefined
  const [fastifyJwt] = localKeys ? loadPeers('the "token" option', ['@fastify/jwt']) : [undefined]
  checkKeys(options as unknown as Record<string, unknown>, OPTION_KEYS, 'token')
  checkFunction(options.findUser, 'token.findUser')
  checkFunction(options.claims, 'token.claims', false)
  checkString(options.issuer, 'token.issuer', false)
  if (options.audience !== undefined && !(Array.isArray(options.audience) && options.audience.length > 0)) {
    checkString(options.audience, 'token.audience')
  }
  if (Array.isArray(options.audience)) options.audience.forEach((a, i) => checkString(a, `token.audience[${i}]`))
  const accessTtl = durationSeconds(options.expiresIn, 'token.expiresIn') ?? DEFAULT_ACCESS_TTL
  const toleranceMs = ((durationSeconds(options.clockTolerance, 'token.clockTolerance', { min: 0, max: 300_000 })) ?? DEFAULT_CLOCK_TOLERANCE) * 1000
  checkBoolean(options.revocation, 'token.revocation')
  checkPositiveInteger(options.maxLength, 'token.maxLength')
  if (options.refresh !== undefined && typeof options.refresh !== 'boolean') {
    checkKeys(checkObject(options.refresh, 'token.refresh'), ['expiresIn', 'maxFamilies'], 'token.refresh')
    checkPositiveInteger(options.refresh.maxFamilies, 'token.refresh.maxFamilies')
  }
  const keys = localKeys ? prepareKeys(options) : []
  /** The application's logger for the issuers' debug lines, once `setup` has run. */
  let log: FastifyBaseLogger | undefined
  const jose = options.issuers === undefined ? undefined : loadPeers('token.issuers', ['jose'])[0]
  const issuers = jose === undefined
    ? undefined
    : prepareIssuers(options.issuers, {
      jose,
      localIssuer: options.issuer,
      toleranceSeconds: toleranceMs / 1000,
      timeoutMs: ctx.timeoutMs,
      log: () => log
    })
  if (!localKeys) {
    for (const name of ['routes', 'refresh', 'revocation'] as const) {
      if (options[name] !== undefined && options[name] !== false) {
        throw new MultiauthOptionError(`token.${name} needs local signing keys (token.keys); with only token.issuers the method verifies the providers' tokens`)
      }
    }
  }
  // On by default: a client sends the same token until it expires, and a hit skips only the work that
  // depends on the token's bytes and the fixed keys (docs/tokens.md, "Verified-token cache").
  if (options.cache !== undefined && options.cache !== false && (typeof options.cache !== 'object' || options.cache === null || Array.isArray(options.cache))) {
    throw new MultiauthOptionError('token.cache must be an object ({ max, ttl }), or false to turn the cache off')
  }
  const { max: cacheMax, ttl: cacheTtl } = options.cache === false ? { max: 0, ttl: 0 } : cacheOptions(options.cache ?? {}, 'token.cache')
  const verifiedTokens = options.cache === false ? undefined : new ExpiringLru<Record<string, unknown>>(cacheMax)
  // Without local keys (only `issuers`) this is never read: the local path below is not reached.
  const signingKey = (keys[0] ?? { canSign: false, fingerprint: '' }) as PreparedKey
  const byKid = keys.length > 1 ? new Map(keys.map((k) => [k.kid as string, k])) : undefined

  const { findUser, issuer, revocation = false } = options
  const audience = options.audience === undefined ? undefined : (typeof options.audience === 'string' ? options.audience : [...options.audience])
  const refreshOn = options.refresh !== undefined && options.refresh !== false
  const refreshTtl = (typeof options.refresh === 'object' ? durationSeconds(options.refresh.expiresIn, 'token.refresh.expiresIn') : undefined) ?? DEFAULT_REFRESH_TTL
  const maxLength = options.maxLength ?? DEFAULT_MAX_CREDENTIAL_LENGTH
  // Validated at registration; the login methods are resolved in setup, once every method exists.
  prepareRoutes(options.routes, undefined, signingKey.canSign)
  const publishedKeys = preparePublishedKeys(options.publishKeys, keys, options.keys !== undefined, issuer)

  const { helpers, revocationOf } = createTokenLifecycle({
    store: ctx.store,
    timeoutMs: ctx.timeoutMs,
    sign: (claims) => (signingKey.jwt as JwtNamespace).sign(claims),
    canSign: signingKey.canSign,
    signingFingerprint: signingKey.fingerprint,
    fingerprints: new Set(keys.map((key) => key.fingerprint)),
    findUser,
    claimsFor: options.claims,
    accessTtl,
    refreshTtl,
    maxFamilies: typeof options.refresh === 'object' ? (options.refresh.maxFamilies ?? DEFAULT_MAX_FAMILIES) : DEFAULT_MAX_FAMILIES,
    refreshOn,
    revocation,
    toleranceMs
  })

  const challenge = `Bearer realm="${ctx.realm}"`
  const invalidChallenge = `${challenge}, error="invalid_token", error_description="The access token is invalid, expired or revoked"`
  const requiredClaims = ['sub', 'jti', 'exp', 'iat']
  if (issuer !== undefined) requiredClaims.push('iss')
  if (audience !== undefined) requiredClaims.push('aud')

  /** fast-jwt's verification options for `key`: its one algorithm, `typ`, the registered claims. */
  function verifyOptions (key: PreparedKey): Record<string, unknown> {
    return {
      algorithms: [key.algorithm],
      checkTyp: ACCESS_TOKEN_TYP,
      requiredClaims,
      clockTolerance: toleranceMs,
      ...(issuer === undefined ? {} : { allowedIss: issuer }),
      ...(audience === undefined ? {} : { allowedAud: audience })
    }
  }

  // One verifier per key, built here with the options it will always use: a request costs one
  // decode and one check, with nothing merged or rebuilt per call (@fastify/jwt's own `verify`
  // copies its options twice on every call).
  if (localKeys) {
    const { createVerifier } = loadFastJwt()
    for (const key of keys) {
      key.verify = createVerifier({ key: Buffer.isBuffer(key.secret) ? key.secret : key.secret.public, ...verifyOptions(key) })
    }
  }

  /** Checks signature, algorithm, typ and registered claims with the key the token names. */
  function checkSignature (token: string): Record<string, unknown> | AuthFailure {
    let key = signingKey
    if (byKid !== undefined) {
      const kid = headerKid(token)
      if (kid === MALFORMED) return MALFORMED
      const found = typeof kid === 'string' ? byKid.get(kid) : undefined
      if (found === undefined) return UNKNOWN_KID
      key = found
    }
    try {
      return (key.verify as JwtVerifier)(token)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (typeof code !== 'string' || !code.startsWith('FAST_JWT_')) throw err
      return TOKEN_FAILURES.get(code) ?? OTHER_TOKEN_ERROR
    }
  }

  function found (user: MultiauthUser | Falsy, claims: Record<string, unknown>): AuthSuccess | AuthFailure {
    return user ? { user, method: 'token', scopes: scopesOf(claims), claims } : NO_USER
  }

  /** `findUser`, without a promise when it answers synchronously (then the guard needs none either). */
  function lookupUser (claims: Record<string, unknown>, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    const user = findUser(claims as TokenClaims, request)
    return isThenable(user) ? Promise.resolve(user).then((value) => found(value, claims)) : found(user, claims)
  }

  async function checkRevoked (claims: Record<string, unknown>, request: FastifyRequest): Promise<AuthSuccess | AuthFailure> {
    const state = await revocationOf(claims)
    if (state === 'revoked') return REVOKED_TOKEN
    if (state === 'logged-out') return LOGGED_OUT
    return await lookupUser(claims, request)
  }

  /** Signature, algorithm, typ and claims: from the cache when this exact token already passed them. */
  function verifiedClaims (token: string): Record<string, unknown> | AuthFailure {
    const cached = verifiedTokens?.get(token)
    if (cached !== undefined) return cached
    const claims = checkSignature(token)
    if (claims instanceof AuthFailure) return claims
    // Our own tokens always carry these as strings and a number; anything else is refused, never read loosely.
    if (typeof claims.sub !== 'string' || typeof claims.jti !== 'string' || typeof claims.iat !== 'number') return BAD_CLAIMS
    if (verifiedTokens !== undefined) {
      // Shared by every request that presents this token: frozen, so no request changes another's claims.
      Object.freeze(claims)
      // Until the TTL ends or the token would stop verifying (exp, with the clock tolerance), whichever is first.
      const expires = Math.min(Date.now() + cacheTtl, (claims.exp as number) * 1000 + toleranceMs)
      verifiedTokens.set(token, claims, expires)
    }
    return claims
  }

  /**
   * A provider's token: jose's verdict, then `findUser`. Revocation does not apply: the provider
   * owns these tokens' lifetime, and its `sub` values are not ours (docs/tokens.md).
   */
  async function verifyRemote (trusted: PreparedIssuer, token: string, request: FastifyRequest): Promise<AuthSuccess | AuthFailure> {
    const verified = await trusted.verify(token)
    if (verified instanceof AuthFailure) return verified
    const user = await findUser(verified.claims as TokenClaims, request)
    return user ? remoteSuccess(user, verified) : NO_USER
  }

  function remoteSuccess (user: MultiauthUser, { claims, scopes, roles, issuer: iss }: RemoteClaims): AuthSuccess {
    return roles === undefined ? { user, method: 'token', scopes, claims, issuer: iss } : { user, method: 'token', scopes, claims, issuer: iss, roles }
  }

  function verify (token: string, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    if (issuers !== undefined && jose !== undefined) {
      // The unverified `iss` only picks which keys to try; the chosen verification checks it again.
      let iss: unknown
      try {
        iss = jose.decodeJwt(token).iss
      } catch {
        return MALFORMED
      }
      const trusted = typeof iss === 'string' ? issuers.get(iss) : undefined
      if (trusted !== undefined) return verifyRemote(trusted, token, request)
      if (!localKeys) return UNTRUSTED_ISSUER
    }
    const claims = verifiedClaims(token)
    if (claims instanceof AuthFailure) return claims
    return revocation ? checkRevoked(claims, request) : lookupUser(claims, request)
  }

  // ---- setup: @fastify/jwt per key, decorator, routes -----------------------------

  function jwtOptions (key: PreparedKey, i: number): JwtPluginOptions {
    return {
      namespace: `multiauth${i}`,
      secret: key.secret,
      sign: {
        algorithm: key.algorithm,
        kid: key.kid,
        header: { alg: key.algorithm, typ: ACCESS_TOKEN_TYP },
        ...(issuer === undefined ? {} : { iss: issuer }),
        ...(audience === undefined ? {} : { aud: audience })
      },
      verify: verifyOptions(key)
    }
  }

  async function setup (app: FastifyInstance): Promise<void> {
    // @fastify/jwt lives in a child context of its own: nothing of it (app.jwt,
    // request.user, jwtVerify) reaches the application, which may register its own.
    if (localKeys) await app.register(async function multiauthJwt (child) {
      const namespaces = Object.create(null) as Record<string, JwtNamespace>
      if (child.hasDecorator('jwt')) {
        // Inherited from the application's own @fastify/jwt: shadow it, so ours are never added to its object.
        Object.defineProperty(child, 'jwt', { value: namespaces })
      } else {
        child.decorate('jwt', namespaces as never) // @fastify/jwt fills one namespace per key
      }
      for (const [i, key] of keys.entries()) {
        await child.register(fastifyJwt as NonNullable<typeof fastifyJwt>, jwtOptions(key, i))
        key.jwt = namespaces[`multiauth${i}`]
      }
    })
    log = app.log
    app.decorate('authTokens', localKeys ? helpers : tokensVerifyOnly)
    if (publishedKeys !== undefined) publishKeysRoutes(app, publishedKeys)
    const routes = prepareRoutes(options.routes, ctx, signingKey.canSign)
    if (routes !== undefined) {
      app.register(tokenRoutes({
        ctx,
        helpers,
        routes,
        challenge,
        refreshOn,
        revocation,
        verifiedClaims: (token) => {
          const claims = verifiedClaims(token)
          return claims instanceof AuthFailure ? undefined : claims
        }
      }), { prefix: routes.prefix })
    }
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
    mapsRoles: issuers !== undefined && [...issuers.values()].some((trusted) => trusted.mapsRoles),
    securitySchemes: () => ({ token: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } })
  }
}
