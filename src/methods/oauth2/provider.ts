import type { FastifyRequest } from 'fastify'
import { CredentialsInvalidError, MultiauthOptionError, OAuth2ProviderError } from '../../core/errors.js'
import { events, requestFields } from '../../core/events.js'
import type { OAuth2RefusalReason } from '../../core/events.js'
import { checkKeys, checkObject, checkString, isPlainObject } from '../../core/validate.js'
import type { OAuth2ProviderOptions } from './types.js'

// Providers: presets resolved and checked at registration, what a provider may answer, and the
// errors a login ends with (a refused login is a 401, a provider failure a 502).

export const PROVIDER_KEYS = ['preset', 'issuer', 'clientId', 'clientSecret', 'scope']
export const PROVIDER_NAME = /^[a-z][a-z0-9-]{0,31}$/
export const OIDC_SCOPE = ['openid', 'email', 'profile']
export const GITHUB_SCOPE = ['read:user', 'user:email']
export const GOOGLE_ISSUER = 'https://accounts.google.com'
export const GITHUB_AUTH = {
  authorizeHost: 'https://github.com',
  authorizePath: '/login/oauth/authorize',
  tokenHost: 'https://github.com',
  tokenPath: '/login/oauth/access_token'
}
export const GITHUB_API = 'https://api.github.com'
/** Asymmetric JWS algorithms only: an id_token "signed" with the client secret or `none` is refused. */
export const ASYMMETRIC = /^(RS|PS|ES)(256|384|512)$|^EdDSA$|^Ed25519$/

/** Seconds an id_token's `iat` may lie in the past: the code exchange happens right after the provider issued it. */
export const ID_TOKEN_MAX_AGE = 600
/** Seconds of clock difference with the provider accepted for `exp`, `nbf` and a future `iat`. */
export const ID_TOKEN_CLOCK_TOLERANCE = 30

/** A 502 whose fixed message says nothing of the provider; `detail` (and the original error) go to the log as its cause. */
export function providerError (detail: string, cause?: unknown): Error {
  return new OAuth2ProviderError({ cause: new Error(detail, cause === undefined ? undefined : { cause }) })
}

/** A 401 for a refused login: `detail` in the log only, the fixed `code` in the `oauth2:refused` event. */
export function refused (request: FastifyRequest, provider: string, code: OAuth2RefusalReason, detail: string, err?: unknown): Error {
  request.log.info({ authMethod: 'oauth2', provider, reason: detail, err }, 'multiauth: OAuth2 login refused')
  publishRefused(request, provider, code)
  return new CredentialsInvalidError()
}

/** The `oauth2:refused` event; also for the refusals that are not a 401 (a bad `next`, a provider failure). */
export function publishRefused (request: FastifyRequest, provider: string, reason: OAuth2RefusalReason): void {
  if (events['oauth2:refused'].hasSubscribers) events['oauth2:refused'].publish({ ...requestFields(request), provider, reason })
}

/** The preset's settings, resolved and checked at registration. Exported for tests. */
export function resolveProvider (name: string, raw: unknown): { kind: 'oidc' | 'github', issuer?: string, clientId: string, clientSecret: string, scope: string[] } {
  const path = `oauth2.providers.${name}`
  if (!PROVIDER_NAME.test(name)) throw new MultiauthOptionError(`${path}: provider names are lower-case letters, digits and dashes (they become URL paths)`)
  const options = checkObject(raw, path) as unknown as OAuth2ProviderOptions
  checkKeys(options as unknown as Record<string, unknown>, PROVIDER_KEYS, path)
  checkString(options.clientId, `${path}.clientId`)
  checkString(options.clientSecret, `${path}.clientSecret`)
  const preset = options.preset ?? 'oidc'
  if (preset !== 'google' && preset !== 'github' && preset !== 'oidc') throw new MultiauthOptionError(`${path}.preset must be "google", "github" or "oidc"`)
  if (options.scope !== undefined && (!Array.isArray(options.scope) || !options.scope.every((s) => typeof s === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s)))) {
    throw new MultiauthOptionError(`${path}.scope must be an array of scope tokens`)
  }
  let issuer: string | undefined
  if (preset === 'github') {
    if (options.issuer !== undefined) throw new MultiauthOptionError(`${path}.issuer does not apply to GitHub (it is not an OpenID Connect provider)`)
  } else {
    issuer = preset === 'google' ? (options.issuer ?? GOOGLE_ISSUER) : options.issuer
    checkString(issuer, `${path}.issuer`)
    let url: URL | undefined
    try { url = new URL(issuer as string) } catch {}
    if (url === undefined || url.search !== '' || url.hash !== '' || (url.protocol !== 'https:' && !isLoopback(url))) {
      throw new MultiauthOptionError(`${path}.issuer must be an https URL without query or fragment (http only on localhost)`)
    }
  }
  const scope = options.scope ?? (preset === 'github' ? GITHUB_SCOPE : OIDC_SCOPE)
  if (preset !== 'github' && !scope.includes('openid')) throw new MultiauthOptionError(`${path}.scope must include "openid"`)
  return { kind: preset === 'github' ? 'github' : 'oidc', issuer, clientId: options.clientId, clientSecret: options.clientSecret, scope: [...scope] }
}

export function isLoopback (url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]'
}

export async function getJson (url: string, timeoutMs: number, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const response = await fetch(url, { headers: { accept: 'application/json', ...headers }, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' })
  if (!response.ok) throw providerError(`${url} answered ${response.status}`)
  const body: unknown = await response.json()
  if (!isPlainObject(body)) throw providerError(`${url} did not answer a JSON object`)
  return body
}

export function endpoint (metadata: Record<string, unknown>, key: string, issuer: string): URL {
  const value = metadata[key]
  let url: URL | undefined
  try { url = new URL(String(value)) } catch {}
  if (typeof value !== 'string' || url === undefined) throw new MultiauthOptionError(`discovery document of ${issuer} has no valid ${key}`)
  return url
}

export function optionalString (value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined
}
