import type { FastifyBaseLogger } from 'fastify'
import type * as Jose from 'jose'
import { durationMs, durationSeconds } from '../../core/durations.js'
import { MultiauthOptionError } from '../../core/errors.js'
import { AuthFailure } from '../../core/outcome.js'
import { checkKeys, checkObject, checkString } from '../../core/validate.js'
import { createRemoteKeys, isSafeUrl } from './remote-keys.js'
import type { TrustedIssuer, TrustedIssuerAlgorithm } from './types.js'

// Trusted issuers (`token.issuers`): their options, checked at registration; the presets of known
// providers; how a provider's claims become scopes and roles; and the verification of a token
// one of them signed (jose `jwtVerify` with the issuer's remote key set, ./remote-keys.ts).

const ISSUER_KEYS = ['issuer', 'jwksUri', 'audience', 'algorithms', 'typ', 'preset', 'scopes', 'roles', 'clockTolerance', 'cooldown', 'cacheMaxAge']
const ALGORITHMS: readonly TrustedIssuerAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']
type ScopeClaim = 'scope' | 'scp' | 'permissions'
const SCOPE_CLAIMS: readonly ScopeClaim[] = ['scope', 'scp', 'permissions']
const DEFAULT_COOLDOWN = 30_000
const DEFAULT_CACHE_MAX_AGE = 10 * 60_000
const NO_STRINGS: readonly string[] = Object.freeze([])

type PresetName = NonNullable<TrustedIssuer['preset']>
interface Preset {
  scopes: readonly ScopeClaim[]
  roles?: string
  /** The `typ` values the provider sends. */
  typ: readonly string[]
  /** The provider sends no `typ` at all: a token without one is accepted too (see `audienceClaim`, `tokenUse`). */
  untyped?: true
  /** The claim the audience is checked against when the provider writes none in `aud`. */
  audienceClaim?: 'client_id'
  /** The provider's own "this is an access token" claim and value, checked instead of `typ`. */
  tokenUse?: readonly [claim: string, value: string]
}
/** What each preset sets: only claim mappings and how the provider marks an access token. docs/tokens.md has the table. */
export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  // Auth0: RBAC permissions in `permissions`; `typ` is at+jwt with the RFC 9068 token profile, JWT with the Auth0 profile.
  auth0: { scopes: ['scope', 'permissions'], typ: ['at+jwt', 'JWT'] },
  // Keycloak: realm roles under realm_access.roles; access tokens carry typ JWT (at+jwt when
  // configured) in the header, and the claim `typ: "Bearer"` (its ID tokens say "ID"): checked,
  // so an ID token is refused even where `audience` is also a client id.
  keycloak: { scopes: ['scope'], roles: 'realm_access.roles', typ: ['at+jwt', 'JWT'], tokenUse: ['typ', 'Bearer'] },
  // Microsoft Entra ID: delegated scopes in `scp` (space-separated), app roles in `roles`; typ JWT.
  entra: { scopes: ['scp'], roles: 'roles', typ: ['JWT'] },
  // Okta (custom authorization server): scopes in `scp` (an array), groups in `groups` when the
  // server adds that claim; no `typ`. Its ID tokens have none either: they are told apart by
  // `aud` (the client id, never the API's audience), so `audience` must not be a client id.
  okta: { scopes: ['scp'], roles: 'groups', typ: ['at+jwt', 'JWT'], untyped: true },
  // Amazon Cognito: access tokens have no `aud` and no `typ`; they carry `client_id` (checked
  // against `audience`: list the app client ids) and `token_use: "access"` (an ID token says "id").
  cognito: { scopes: ['scope'], roles: 'cognito:groups', typ: [], untyped: true, audienceClaim: 'client_id', tokenUse: ['token_use', 'access'] }
}
/**
 * No Google preset, on purpose: Google's access tokens are opaque, and the JWT a Google caller
 * can send is an ID token, which any Google account can have signed for any audience, so
 * `audience` identifies no caller there. Said at registration instead of "unknown preset".
 */
const NO_GOOGLE_PRESET = 'there is no "google" preset: Google access tokens are opaque (not JWTs), and a Google-signed ID token can be obtained by any Google account for any audience. To accept ID tokens of your own service accounts, configure issuer https://accounts.google.com with typ: \'JWT\' and admit callers by email in findUser (docs/tokens.md, "Google")'

/** What a verified provider token hands the method. */
export interface RemoteClaims {
  claims: Record<string, unknown>
  scopes: readonly string[]
  roles: readonly string[] | undefined
  issuer: string
}

export interface PreparedIssuer {
  issuer: string
  /** True when this issuer maps roles from its tokens. */
  mapsRoles: boolean
  verify (token: string): Promise<RemoteClaims | AuthFailure>
}

/** `typ` as RFC 7515 §4.1.9 compares it: case-insensitive, `application/` optional. */
function normaliseTyp (typ: string): string {
  const lower = typ.toLowerCase()
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower
}

function checkUrl (value: unknown, path: string): string {
  checkString(value, path)
  if (!URL.canParse(value as string)) throw new MultiauthOptionError(`${path} must be a URL`)
  const url = new URL(value as string)
  if (!isSafeUrl(url)) throw new MultiauthOptionError(`${path} must be an https URL (http only on 127.0.0.1, localhost or [::1])`)
  if (url.search !== '' || url.hash !== '') throw new MultiauthOptionError(`${path} must have no query or fragment`)
  // fetch() refuses such a URL, and the debug log lines name the URL.
  if (url.username !== '' || url.password !== '') throw new MultiauthOptionError(`${path} must hold no credentials`)
  return value as string
}

function stringOrList (value: unknown, path: string): string[] {
  if (typeof value === 'string') {
    checkString(value, path)
    return [value]
  }
  if (!Array.isArray(value) || value.length === 0) throw new MultiauthOptionError(`${path} must be a non-empty string or a non-empty array of them`)
  value.forEach((entry, i) => checkString(entry, `${path}[${i}]`))
  return [...value] as string[]
}

function listOf<T extends string> (value: unknown, allowed: readonly T[], path: string): T[] {
  if (!Array.isArray(value) || value.length === 0) throw new MultiauthOptionError(`${path} must be a non-empty array`)
  value.forEach((entry, i) => {
    if (!allowed.includes(entry as T)) throw new MultiauthOptionError(`${path}[${i}] must be one of ${allowed.join(', ')} (got ${JSON.stringify(entry)})`)
  })
  if (new Set(value).size !== value.length) throw new MultiauthOptionError(`${path} lists a value twice`)
  return [...value] as T[]
}

/** Space-separated scopes, as `scope` (RFC 8693 §4.2) and Entra's `scp` carry them. */
function splitScopes (text: string): string[] {
  return text.split(' ').filter((s) => s.length > 0)
}

function isStringArray (value: unknown): value is string[] {
  return Array.isArray(value) && value.every((s) => typeof s === 'string')
}

/**
 * The scopes of the configured claims, merged. A claim of an unexpected type makes the whole
 * list empty: never a partial read, never a substring match.
 */
export function scopesFrom (claims: Record<string, unknown>, names: readonly ScopeClaim[]): readonly string[] {
  const scopes = new Set<string>()
  for (const name of names) {
    const value = claims[name]
    if (value === undefined) continue
    if (typeof value === 'string' && name !== 'permissions') splitScopes(value).forEach((s) => scopes.add(s))
    else if (isStringArray(value)) value.forEach((s) => { if (s.length > 0) scopes.add(s) })
    else return NO_STRINGS
  }
  return scopes.size === 0 ? NO_STRINGS : [...scopes]
}

/**
 * The value at a dotted claim path (`realm_access.roles`), own properties only. A claim whose
 * name itself contains dots (Auth0's `https://example.com/roles`) is read whole first.
 */
function claimAt (claims: Record<string, unknown>, path: string, segments: readonly string[]): unknown {
  if (Object.hasOwn(claims, path)) return claims[path]
  let value: unknown = claims
  for (const segment of segments) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, segment)) return undefined
    value = (value as Record<string, unknown>)[segment]
  }
  return value
}

/** Roles at `path`: an array of strings, else none (a wrong type grants nothing). */
export function rolesFrom (claims: Record<string, unknown>, path: string): readonly string[] {
  const value = claimAt(claims, path, path.split('.'))
  return isStringArray(value) ? value : NO_STRINGS
}

const MALFORMED = new AuthFailure('malformed', 'malformed token')
const FAILURES = {
  expired: new AuthFailure('expired', 'token expired'),
  notYetValid: new AuthFailure('not-yet-valid', 'token not yet valid (nbf)'),
  signature: new AuthFailure('invalid-signature', 'invalid token signature'),
  algorithm: new AuthFailure('algorithm', 'token algorithm not allowed for this issuer'),
  unknownKid: new AuthFailure('unknown-kid', 'token kid matches no key the issuer publishes'),
  issuerAudience: new AuthFailure('claims', 'token iss/aud (or another claim) not accepted'),
  missingClaim: new AuthFailure('missing-claim', 'token lacks a required claim'),
  typ: new AuthFailure('not-access-token', 'token is not an access token (typ)'),
  badSub: new AuthFailure('claims', 'token sub claim is not a string'),
  unusableKey: new AuthFailure('unusable-key', 'token names a published key that cannot verify it (malformed, or RSA under 2048 bits)'),
  other: new AuthFailure('verifier', 'token refused by the verifier')
}

/** jose's verdict on a token → our refusal; `undefined` for errors that are not about the token (rethrown). */
function failureOf (jose: typeof Jose, err: unknown): AuthFailure | undefined {
  const { errors } = jose
  if (err instanceof errors.JWTExpired) return FAILURES.expired
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return FAILURES.notYetValid
    if (err.reason === 'missing') return FAILURES.missingClaim
    return FAILURES.issuerAudience
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return FAILURES.signature
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return FAILURES.algorithm
  if (err instanceof errors.JWKSNoMatchingKey) return FAILURES.unknownKid
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return MALFORMED
  // A key set member jose cannot use for this token (a private key, a bad JWK): refused, never passed.
  if (err instanceof errors.JWKSInvalid || err instanceof errors.JWKInvalid) return FAILURES.other
  // WebCrypto's refusal of a published key jose picked (bad members, a short RSA modulus): the
  // provider's key set is at fault, but the token names that key, so any caller could make it a 500.
  if (err instanceof TypeError || err instanceof DOMException) return FAILURES.unusableKey
  return undefined
}

export interface IssuerContext {
  jose: typeof Jose
  /** `token.issuer`, which no trusted issuer may repeat. */
  localIssuer: string | undefined
  /** `token.clockTolerance` in seconds: each issuer's default. */
  toleranceSeconds: number
  timeoutMs: number
  log: () => FastifyBaseLogger | undefined
}

function prepareIssuer (raw: unknown, path: string, ctx: IssuerContext): PreparedIssuer {
  const options = checkObject(raw, path) as unknown as TrustedIssuer
  checkKeys(options as unknown as Record<string, unknown>, ISSUER_KEYS, path)
  const issuer = checkUrl(options.issuer, `${path}.issuer`)
  const jwksUri = options.jwksUri === undefined ? undefined : checkUrl(options.jwksUri, `${path}.jwksUri`)
  if (options.audience === undefined) throw new MultiauthOptionError(`${path}.audience is required: the API's identifier at the provider (a token minted for another API must not pass)`)
  const audience = stringOrList(options.audience, `${path}.audience`)
  let preset: Preset | undefined
  if (options.preset !== undefined) {
    preset = Object.hasOwn(PRESETS, options.preset) ? PRESETS[options.preset] : undefined
    if ((options.preset as string) === 'google') throw new MultiauthOptionError(`${path}.preset: ${NO_GOOGLE_PRESET}`)
    if (preset === undefined) throw new MultiauthOptionError(`${path}.preset must be one of ${Object.keys(PRESETS).join(', ')} (got ${JSON.stringify(options.preset)})`)
  }
  const algorithms = options.algorithms === undefined ? [...ALGORITHMS] : listOf(options.algorithms, ALGORITHMS, `${path}.algorithms`)
  const typs = new Set((options.typ === undefined ? (preset?.typ ?? ['at+jwt']) : stringOrList(options.typ, `${path}.typ`)).map(normaliseTyp))
  const scopeClaims = options.scopes === undefined ? (preset?.scopes ?? ['scope']) : listOf(options.scopes, SCOPE_CLAIMS, `${path}.scopes`)
  if (options.roles !== undefined) checkString(options.roles, `${path}.roles`)
  const rolesPath = options.roles ?? preset?.roles
  const clockTolerance = durationSeconds(options.clockTolerance, `${path}.clockTolerance`, { min: 0, max: 300_000 }) ?? ctx.toleranceSeconds
  const cooldownMs = durationMs(options.cooldown, `${path}.cooldown`, { min: 1000 }) ?? DEFAULT_COOLDOWN
  const cacheMaxAgeMs = durationMs(options.cacheMaxAge, `${path}.cacheMaxAge`, { min: 1000 }) ?? DEFAULT_CACHE_MAX_AGE

  const { jose } = ctx
  const keys = createRemoteKeys(jose, { issuer, jwksUri, timeoutMs: ctx.timeoutMs, cooldownMs, cacheMaxAgeMs, log: ctx.log })
  const audienceClaim = preset?.audienceClaim
  const tokenUse = preset?.tokenUse
  // Untyped only as the preset says, and only while `typ` is not set explicitly.
  const untyped = options.typ === undefined && preset?.untyped === true
  const verifyOptions: Jose.JWTVerifyOptions = audienceClaim === undefined
    ? { issuer, audience, algorithms, clockTolerance, requiredClaims: ['exp', 'sub'] }
    : { issuer, algorithms, clockTolerance, requiredClaims: ['exp', 'sub', audienceClaim] }

  /**
   * jose's `jwtVerify` with the issuer's keys. A token naming no `kid` (RFC 7515 makes it optional)
   * while several published keys fit its `alg` is tried against each of them: jose leaves that
   * to the caller, and unhandled it was a 500 any caller could provoke.
   */
  async function verified (token: string): Promise<Jose.JWTVerifyResult> {
    try {
      return await jose.jwtVerify(token, keys, verifyOptions)
    } catch (err) {
      if (!(err instanceof jose.errors.JWKSMultipleMatchingKeys)) throw err
      for await (const key of err) {
        try {
          return await jose.jwtVerify(token, key, verifyOptions)
        } catch (failed) {
          if (!(failed instanceof jose.errors.JWSSignatureVerificationFailed)) throw failed
        }
      }
      throw new jose.errors.JWSSignatureVerificationFailed()
    }
  }

  async function verify (token: string): Promise<RemoteClaims | AuthFailure> {
    let result
    try {
      result = await verified(token)
    } catch (err) {
      const failure = failureOf(jose, err)
      if (failure === undefined) throw err
      return failure
    }
    const { payload: claims, protectedHeader } = result
    // RFC 8725 §3.11: explicit typing, so an ID token of the same provider is never taken for an access token.
    if (protectedHeader.typ === undefined ? !untyped : (typeof protectedHeader.typ !== 'string' || !typs.has(normaliseTyp(protectedHeader.typ)))) return FAILURES.typ
    if (tokenUse !== undefined && claims[tokenUse[0]] !== tokenUse[1]) return FAILURES.typ
    if (audienceClaim !== undefined && !(typeof claims[audienceClaim] === 'string' && audience.includes(claims[audienceClaim] as string))) return FAILURES.issuerAudience
    if (typeof claims.sub !== 'string') return FAILURES.badSub
    return {
      claims,
      scopes: scopesFrom(claims, scopeClaims),
      roles: rolesPath === undefined ? undefined : rolesFrom(claims, rolesPath),
      issuer
    }
  }

  return { issuer, mapsRoles: rolesPath !== undefined, verify }
}

/** `token.issuers` → the trusted issuers by their exact `iss`; every check happens here, at registration. */
export function prepareIssuers (raw: unknown, ctx: IssuerContext): Map<string, PreparedIssuer> {
  if (!Array.isArray(raw) || raw.length === 0) throw new MultiauthOptionError('token.issuers must be a non-empty array')
  const byIssuer = new Map<string, PreparedIssuer>()
  raw.forEach((entry, i) => {
    const path = `token.issuers[${i}]`
    const prepared = prepareIssuer(entry, path, ctx)
    if (prepared.issuer === ctx.localIssuer) {
      throw new MultiauthOptionError(`${path}.issuer is token.issuer: tokens of this service are verified with token.keys, not fetched keys`)
    }
    if (byIssuer.has(prepared.issuer)) throw new MultiauthOptionError(`${path}.issuer "${prepared.issuer}" is listed twice`)
    byIssuer.set(prepared.issuer, prepared)
  })
  return byIssuer
}
