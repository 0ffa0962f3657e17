import type { KeyObject } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { Awaitable, Falsy, MultiauthUser } from '../../core/types.js'
import type { VerifiedCredentialCacheOptions } from '../../lib/expiring-lru.js'
import type { Duration } from '../../core/durations.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Token helpers (issue, refresh, revoke). Always present; without the `token` option every call rejects with 500 `FST_MULTIAUTH_NOT_CONFIGURED`. */
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

/**
 * Claims of a verified access token, as `findUser` receives them. For a token of a trusted
 * issuer (`issuers`), `jti` and `iat` are there only when the provider sent them.
 */
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
  /** Finds your user for verified claims (Flask's `verify_auth_token`); falsy = refused (e.g. a deleted user). */
  findUser: (claims: TokenClaims, request: FastifyRequest) => Awaitable<MultiauthUser | Falsy>
  /** The claims to put in a token for a user. Default: `{ sub: String(user.id) }`. */
  claims?: (user: MultiauthUser, request: FastifyRequest | undefined) => Awaitable<TokenClaimsInput>
  /** Written to `iss` and required on verification when set. */
  issuer?: string
  /** Written to `aud` and required on verification when set (any listed value is accepted). */
  audience?: string | readonly string[]
  /** Accepted clock skew for `exp`/`nbf`/`iat` (ms or `'30s'`, at most 5 minutes). Default 30 seconds. */
  clockTolerance?: Duration
  /** Access-token lifetime (ms or `'15m'`; whole seconds, at least one). Default 15 minutes. The routes report it in seconds. */
  expiresIn?: Duration
  /**
   * Rotating refresh tokens with reuse detection. `true` or `{ expiresIn, maxFamilies }`: `expiresIn`
   * (ms or `'14d'`; default 14 days, counted from each rotation); `maxFamilies` live logins
   * per user (default 50; a new login beyond it revokes the user's oldest). Default off.
   */
  refresh?: boolean | { expiresIn?: Duration, maxFamilies?: number }
  /** Revocation by `jti` and per-user "log out everywhere", checked in the store on every request. Default off. */
  revocation?: boolean
  /** Opt-in routes `POST {prefix}`, `{prefix}/refresh`, `{prefix}/revoke`. `true` or `{ prefix, methods }`. */
  routes?: boolean | TokenRoutesOptions
  /** Longest Authorization header accepted, in characters (default 8192); longer is a 400. */
  maxLength?: number
  /**
   * Remember access tokens whose signature and claims already verified, for `ttl` ms (never past
   * their `exp`) and at most `max` of them, so a client reusing its token skips the signature
   * check. Revocation and `findUser` still run on every request. On by default
   * (`{ max: 10_000, ttl: '1m' }`, a few MiB at most); `false` turns it off.
   * See docs/tokens.md, "Verified-token cache".
   */
  cache?: Partial<VerifiedCredentialCacheOptions> | false
  /**
   * Publish the public halves of `keys` (RSA, EC or Ed25519; never an HS256 secret) as a JWK Set,
   * so that other services verify these tokens (`token.issuers` there). Opt-in. `true` =
   * `{ path: '/.well-known/jwks.json' }`. See docs/tokens.md, "Publishing your keys".
   */
  publishKeys?: boolean | PublishKeysOptions
  /**
   * Identity providers whose access tokens are accepted, verified against the keys each one
   * publishes (JWKS). The token's `iss` picks the entry; an `iss` that is neither listed nor
   * `token.issuer` is refused without any network call. With `issuers`, local keys are optional:
   * without them the method only verifies (no routes, no refresh, no revocation).
   * See docs/tokens.md, "Tokens from an identity provider".
   */
  issuers?: readonly TrustedIssuer[]
}

/** Signature algorithms a trusted issuer's tokens may use: asymmetric only (never `none`, never HS*). */
export type TrustedIssuerAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

/** An identity provider whose access tokens the `token` method accepts. */
export interface TrustedIssuer {
  /** Compared exactly with the token's `iss`. `https:` (or `http:` on 127.0.0.1, localhost, ::1). */
  issuer: string
  /**
   * Where the provider publishes its keys. Default: the `jwks_uri` of its OpenID Connect discovery
   * document (`<issuer>/.well-known/openid-configuration`), else of its RFC 8414 metadata.
   */
  jwksUri?: string
  /**
   * Required: the token's `aud` must contain one of these (a token minted for another API of the
   * same provider is refused). With `preset: 'cognito'`, whose access tokens have no `aud`: the
   * app client ids whose `client_id` is accepted.
   */
  audience: string | readonly string[]
  /** Accepted algorithms. Default: every asymmetric one the key named by the token's `kid` can verify. */
  algorithms?: readonly TrustedIssuerAlgorithm[]
  /**
   * Accepted `typ` headers (case-insensitive, `application/` optional). Default `'at+jwt'` (RFC 9068),
   * or what the preset says; e.g. `['at+jwt', 'JWT']` for a provider that sends `JWT`.
   */
  typ?: string | readonly string[]
  /**
   * Claim mappings and the access-token marker of a known provider (docs/tokens.md has the table);
   * explicit `scopes`, `roles`, `typ` win (an explicit `typ` also ends a preset's acceptance of
   * tokens without one: Okta, Cognito).
   */
  preset?: 'auth0' | 'keycloak' | 'entra' | 'okta' | 'cognito'
  /** Claims read for `request.auth.scopes`, merged: `scope` (space-separated), `scp` (array or string), `permissions` (array). Default `['scope']`. */
  scopes?: ReadonlyArray<'scope' | 'scp' | 'permissions'>
  /** Claim holding the roles (an array of strings), as a dotted path: `'realm_access.roles'`, `'roles'`, `'groups'`. */
  roles?: string
  /** Accepted clock skew for `exp`/`nbf` (at most 5 minutes). Default: `token.clockTolerance`. */
  clockTolerance?: Duration
  /** After a fetch of the key set, an unknown `kid` triggers no new fetch for this long (at least 1 s). Default 30 seconds. */
  cooldown?: Duration
  /** How long a fetched key set is used before it is fetched again (at least 1 s). Default 10 minutes. */
  cacheMaxAge?: Duration
}

export interface PublishKeysOptions {
  /** Where the JWK Set is served. Default `/.well-known/jwks.json`. */
  path?: string
  /** Also serve `GET /.well-known/openid-configuration` → `{ issuer, jwks_uri }` (needs `issuer`, an https URL). Default false. */
  discovery?: boolean
}

export interface TokenRoutesOptions {
  /** Default `/tokens`. */
  prefix?: string
  /** Methods that may obtain a token: password-based only. Default: those of `basic`, `session` that are configured. */
  methods?: ReadonlyArray<'basic' | 'session'>
}

/** What `app.authTokens.issue` and `refresh` resolve (the HTTP routes send the same under RFC 6749 §5.1 names). */
export interface IssuedTokens {
  /** The access token (a JWT), sent as `Authorization: Bearer <accessToken>`. */
  accessToken: string
  tokenType: 'Bearer'
  /** Its lifetime in seconds. */
  expiresIn: number
  /** Present when refresh tokens are on. Opaque; store it like a password. */
  refreshToken?: string
}

/** Options of `issue`: the request the login came with, and when its credentials were verified. */
export interface IssueOptions {
  /** Handed to `claims(user, request)`; also where `POST /tokens` recorded its verification time. */
  request?: FastifyRequest
  /**
   * When your route checked the credentials (ms since the epoch or a Date; default now). The
   * token's `iat` is that time, so a "log out everywhere" issued while your route was still
   * working (a password reset racing this login) refuses the token.
   */
  verifiedAt?: number | Date
}

/** `app.authTokens`: helpers for applications that write their own login/logout routes. */
export interface AuthTokens {
  /** Signs an access token for `user` (and starts a refresh-token family when refresh is on). */
  issue (user: MultiauthUser, options?: IssueOptions): Promise<IssuedTokens>
  /** Rotates a refresh token. Resolves `null` when it is refused (unknown, expired, revoked, reused: a reuse revokes its whole family). */
  refresh (refreshToken: string, options: { request: FastifyRequest }): Promise<IssuedTokens | null>
  /** Revokes one access token until it expires, by its verified claims (`request.auth.claims`). Needs `revocation`. */
  revoke (claims: Record<string, unknown>, options?: RevokeOptions): Promise<void>
  /** Revokes a refresh token and every token rotated from the same login (its family). Unknown tokens are ignored. */
  revokeRefreshToken (refreshToken: string, options?: RevokeOptions): Promise<void>
  /** "Log out everywhere": every access token (with `revocation`) and refresh token issued to `sub` until now stops working. */
  revokeAll (sub: string, options?: RevokeOptions): Promise<void>
}

/** Options of the revocation helpers. */
export interface RevokeOptions {
  /** The request asking for it: its id, route and client IP go into the `token:revoked` / `token:revoked-all` events (docs/events.md). */
  request?: FastifyRequest
}
