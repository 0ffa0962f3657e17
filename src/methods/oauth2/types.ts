import type { OAuth2Namespace } from '@fastify/oauth2'
import type { FastifyRequest } from 'fastify'
import type { createRemoteJWKSet } from 'jose'
import type { Duration } from '../../core/durations.js'
import type { Awaitable, Falsy, MultiauthUser } from '../../core/types.js'

// The oauth2 method's public options and what `findUser` receives.

export interface OAuth2ProviderOptions {
  /** `'google'`, `'github'` or `'oidc'` (any OpenID Connect provider, by `issuer`). Default `'oidc'`. */
  preset?: 'google' | 'github' | 'oidc'
  /** OpenID Connect issuer; its discovery document is `<issuer>/.well-known/openid-configuration`. Required for `'oidc'`. */
  issuer?: string
  clientId: string
  clientSecret: string
  /** Default: `openid email profile` for OpenID Connect, `read:user user:email` for GitHub. */
  scope?: string[]
}

/** The provider identity handed to `findUser`. */
export interface OAuth2Profile {
  /** The key of `oauth2.providers` the login went through. */
  provider: string
  /** Stable subject at the provider (`sub`, or GitHub's numeric id): link accounts on (provider, id), not on email. */
  id: string
  email?: string
  /** Whether the provider verified `email`; do not link by email when it is not `true`. */
  emailVerified?: boolean
  name?: string
  /** The validated id_token claims (OpenID Connect, plus userinfo when fetched) or GitHub's user object. */
  claims: Record<string, unknown>
}

/** The provider's token response. Never stored by the plugin: keep what you need in `findUser`. */
export interface OAuth2Tokens {
  access_token: string
  token_type: string
  refresh_token?: string
  id_token?: string
  expires_in?: number
  scope?: string
  [key: string]: unknown
}

export interface OAuth2Options {
  providers: Record<string, OAuth2ProviderOptions>
  /** This application's public origin (`https://app.example.com`): callback URLs are built from it, never from the Host header. */
  baseUrl: string
  /** Route prefix: `GET <prefix>/<provider>` starts a login, `GET <prefix>/<provider>/callback` ends it. Default `/auth`. */
  prefix?: string
  /** Maps the provider identity to your user (find, link or create). Falsy refuses the login (401). */
  findUser: (profile: OAuth2Profile, tokens: OAuth2Tokens, request: FastifyRequest) => Awaitable<MultiauthUser | Falsy>
  /** Where the browser goes after login. Default `/`. */
  redirect?: string
  /** Paths the start route accepts in `?next=` (exact match, local paths only). Anything else is a 400: no open redirect. */
  allowedRedirects?: string[]
  /** Timeout in ms for discovery, JWKS and userinfo requests. Default 5000. */
  httpTimeout?: Duration
}

export interface ProviderRuntime {
  name: string
  kind: 'oidc' | 'github'
  oauth2: () => OAuth2Namespace
  // OpenID Connect only, filled from discovery at setup:
  issuer?: string
  jwks?: ReturnType<typeof createRemoteJWKSet>
  algorithms?: string[]
  userinfoEndpoint?: string
  /** The provider announces RFC 9207: its authorization responses carry `iss`, which must then be present and be its issuer. */
  issInResponse?: boolean
}
