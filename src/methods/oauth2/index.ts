import { randomBytes } from 'node:crypto'
import type { OAuth2Namespace } from '@fastify/oauth2'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { JWTPayload } from 'jose'
import { BadRequestError, MultiauthOptionError, OAuth2ProviderError } from '../../core/errors.js'
import { events, requestFields } from '../../core/events.js'
import type { OAuth2RefusalReason } from '../../core/events.js'
import { bounded, callAsync, isOwnError, storeError } from '../../core/callbacks.js'
import { pluginRouteErrorHandler } from '../../core/route-errors.js'
import { loadPeers } from '../../core/peer.js'
import type { AuthMethod, OpenApiSecurityScheme } from '../../core/types.js'
import { checkFunction, checkKeys, checkObject, checkString, isPlainObject } from '../../core/validate.js'
import type { MethodContext } from '../context.js'
import { durationMs } from '../../core/durations.js'
import { oauth2SessionMethod } from '../session/index.js'
import type { SessionCore } from '../session/index.js'
import { ASYMMETRIC, GITHUB_API, GITHUB_AUTH, ID_TOKEN_CLOCK_TOLERANCE, ID_TOKEN_MAX_AGE, endpoint, getJson, optionalString, providerError, publishRefused, refused, resolveProvider } from './provider.js'
import type { OAuth2Options, OAuth2Profile, OAuth2Tokens, ProviderRuntime } from './types.js'

// The `oauth2` method: provider login through @fastify/oauth2 (state, PKCE S256), OpenID Connect
// id_token and nonce checked with jose, a mapped user, and a session. Providers: ./provider.ts.

export type { OAuth2Options, OAuth2Profile, OAuth2ProviderOptions, OAuth2Tokens } from './types.js'
export { resolveProvider } from './provider.js'

const OPTION_KEYS = ['providers', 'baseUrl', 'prefix', 'findUser', 'redirect', 'allowedRedirects', 'httpTimeout']

/** Why an id_token is refused: the event's code, and the detail for the log. A class, so no claim set can pass for one. */
class IdTokenRefusal {
  constructor (readonly code: Extract<OAuth2RefusalReason, 'id-token' | 'nonce'>, readonly detail: string) {}
}

export function createOAuth2Method (raw: unknown, ctx: MethodContext): AuthMethod {
  const [fastifyOauth2, { createRemoteJWKSet, errors: joseErrors, jwtVerify }] = loadPeers('the "oauth2" option', ['@fastify/oauth2', 'jose'])
  /** jose errors that mean "this id_token is not valid for us" (401), as opposed to a provider or network failure (502). */
  const INVALID_TOKEN_ERRORS = [
    joseErrors.JWTClaimValidationFailed, joseErrors.JWTExpired, joseErrors.JWTInvalid, joseErrors.JWSInvalid,
    joseErrors.JWSSignatureVerificationFailed, joseErrors.JWKSNoMatchingKey, joseErrors.JOSEAlgNotAllowed,
    joseErrors.JWKSMultipleMatchingKeys, joseErrors.JOSENotSupported
  ]
  const options = checkObject(raw, 'oauth2') as unknown as OAuth2Options
  checkKeys(options as unknown as Record<string, unknown>, OPTION_KEYS, 'oauth2')
  checkFunction(options.findUser, 'oauth2.findUser')
  checkString(options.baseUrl, 'oauth2.baseUrl')
  let base: URL | undefined
  try { base = new URL(options.baseUrl) } catch {}
  if (base === undefined || base.origin !== options.baseUrl.replace(/\/$/, '')) {
    throw new MultiauthOptionError('oauth2.baseUrl must be an origin such as https://app.example.com (no path)')
  }
  const prefix = options.prefix ?? '/auth'
  if (typeof prefix !== 'string' || !/^(\/[A-Za-z0-9._~-]+)+$/.test(prefix)) throw new MultiauthOptionError('oauth2.prefix must be a path such as /auth')
  const localPath = (value: unknown, path: string): string => {
    // One leading slash, not two (//evil.example is another host), no backslash (browsers read it as a slash).
    if (typeof value !== 'string' || !/^\/(?![/\\])[^\\\s]*$/.test(value)) throw new MultiauthOptionError(`${path} must be a local path such as /account`)
    return value
  }
  const redirect = localPath(options.redirect ?? '/', 'oauth2.redirect')
  if (options.allowedRedirects !== undefined && !Array.isArray(options.allowedRedirects)) throw new MultiauthOptionError('oauth2.allowedRedirects must be an array of local paths')
  const allowedRedirects = (options.allowedRedirects ?? []).map((p, i) => localPath(p, `oauth2.allowedRedirects[${i}]`))
  const providerEntries = Object.entries(checkObject(options.providers, 'oauth2.providers'))
  if (providerEntries.length === 0) throw new MultiauthOptionError('oauth2.providers needs at least one provider')
  const resolved = providerEntries.map(([name, p]) => ({ name, ...resolveProvider(name, p) }))
  const session = ctx.methods.get('session') as (AuthMethod & { core?: SessionCore }) | undefined
  if (session?.core === undefined) throw new MultiauthOptionError('oauth2 needs the session option: a login through a provider starts a session')
  const core = session.core
  const { findUser } = options
  const httpTimeout = durationMs(options.httpTimeout, 'oauth2.httpTimeout') ?? 5000
  const secureCookies = base.protocol === 'https:'
  const origin = base.origin
  // Our flow cookie (the nonce and the index of the allowed `next` path), with the same
  // __Host- protection over HTTPS as @fastify/oauth2's state and verifier cookies.
  const flowCookie = secureCookies ? '__Host-multiauth-oauth2' : 'multiauth-oauth2'
  const flowCookieOptions = { httpOnly: true, secure: secureCookies, sameSite: 'lax' as const, path: '/' }

  async function registerProvider (app: FastifyInstance, p: typeof resolved[number]): Promise<ProviderRuntime> {
    const decoration = `multiauthOAuth2:${p.name}`
    const runtime: ProviderRuntime = { name: p.name, kind: p.kind, oauth2: () => (app as unknown as Record<string, OAuth2Namespace>)[decoration] as OAuth2Namespace }
    let auth = GITHUB_AUTH
    if (p.kind === 'oidc') {
      const issuer = p.issuer as string
      // Discovery once, at startup; the issuer must be exactly the one configured (OIDC Discovery §4.3).
      const discovery = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
      let metadata: Record<string, unknown>
      try {
        metadata = await getJson(discovery, httpTimeout)
      } catch (err) {
        // At startup the detail is for the developer: say what failed, here, in the message.
        const detail = ((err as { cause?: { message?: unknown } }).cause?.message ?? (err as Error).message) as string
        throw new Error(`fastify-multiauth: oauth2.providers.${p.name}: OpenID Connect discovery failed (${detail})`, { cause: err })
      }
      if (metadata.issuer !== issuer) throw new MultiauthOptionError(`oauth2.providers.${p.name}: discovery names issuer "${String(metadata.issuer)}", not "${issuer}"`)
      const methods = metadata.code_challenge_methods_supported
      if (Array.isArray(methods) && !methods.includes('S256')) throw new MultiauthOptionError(`oauth2.providers.${p.name}: the provider does not support PKCE S256`)
      const authorize = endpoint(metadata, 'authorization_endpoint', issuer)
      const token = endpoint(metadata, 'token_endpoint', issuer)
      const supported = Array.isArray(metadata.id_token_signing_alg_values_supported) ? metadata.id_token_signing_alg_values_supported : ['RS256']
      runtime.issuer = issuer
      runtime.algorithms = supported.filter((a): a is string => typeof a === 'string' && ASYMMETRIC.test(a))
      if (runtime.algorithms.length === 0) throw new MultiauthOptionError(`oauth2.providers.${p.name}: the provider signs id_tokens with no asymmetric algorithm we accept`)
      runtime.jwks = createRemoteJWKSet(endpoint(metadata, 'jwks_uri', issuer), { timeoutDuration: httpTimeout })
      runtime.userinfoEndpoint = optionalString(metadata.userinfo_endpoint)
      runtime.issInResponse = metadata.authorization_response_iss_parameter_supported === true
      auth = { authorizeHost: authorize.origin, authorizePath: authorize.pathname, tokenHost: token.origin, tokenPath: token.pathname }
    }
    await app.register(fastifyOauth2, {
      name: decoration,
      credentials: { client: { id: p.clientId, secret: p.clientSecret }, auth },
      scope: p.scope,
      callbackUri: `${origin}${prefix}/${p.name}/callback`,
      // Always on, whatever the provider advertises (RFC 9700 §2.1.1).
      pkce: 'S256',
      hostPrefixedCookies: secureCookies,
      cookie: { secure: secureCookies, path: '/', sameSite: 'lax', httpOnly: true }
    })
    return runtime
  }

  async function validateIdToken (runtime: ProviderRuntime, clientId: string, idToken: unknown, nonce: string): Promise<JWTPayload | IdTokenRefusal> {
    const invalid = (detail: string): IdTokenRefusal => new IdTokenRefusal('id-token', detail)
    if (typeof idToken !== 'string') return invalid('no id_token in the token response')
    let payload: JWTPayload
    try {
      ({ payload } = await jwtVerify(idToken, runtime.jwks as ReturnType<typeof createRemoteJWKSet>, {
        issuer: runtime.issuer as string,
        audience: clientId,
        algorithms: runtime.algorithms as string[],
        requiredClaims: ['sub', 'exp', 'iat', 'nonce'],
        // The id_token comes straight from the token endpoint: it was issued moments ago. An `iat` older than
        // ID_TOKEN_MAX_AGE, or later than now + the clock tolerance, is refused (jose checks both with maxTokenAge).
        maxTokenAge: ID_TOKEN_MAX_AGE,
        clockTolerance: ID_TOKEN_CLOCK_TOLERANCE
      }))
    } catch (err) {
      if (INVALID_TOKEN_ERRORS.some((E) => err instanceof E)) return invalid(`id_token invalid: ${(err as Error).message}`)
      throw providerError('cannot validate the id_token', err)
    }
    if (payload.nonce !== nonce) return new IdTokenRefusal('nonce', 'id_token nonce does not match the one this browser sent')
    // OIDC Core §3.1.3.7: azp, whenever present, must be us; with several audiences it must be present.
    if ((payload.azp !== undefined || (Array.isArray(payload.aud) && payload.aud.length > 1)) && payload.azp !== clientId) {
      return invalid('id_token azp is not this client')
    }
    // OIDC Core §2: sub is a non-empty string (a number would be a different account key after String()).
    if (typeof payload.sub !== 'string' || payload.sub === '') return invalid('id_token sub is not a non-empty string')
    return payload
  }

  async function oidcProfile (runtime: ProviderRuntime, claims: JWTPayload, accessToken: string): Promise<Record<string, unknown>> {
    if (claims.email !== undefined || runtime.userinfoEndpoint === undefined) return claims
    // Some providers keep profile claims out of the id_token when an access token is issued.
    const info = await getJson(runtime.userinfoEndpoint, httpTimeout, { authorization: `Bearer ${accessToken}` })
    // OIDC Core §5.3.2: userinfo for another subject must not be used.
    return info.sub === claims.sub ? { ...info, ...claims } : claims
  }

  async function githubProfile (accessToken: string): Promise<Record<string, unknown>> {
    const headers = { authorization: `Bearer ${accessToken}`, 'x-github-api-version': '2022-11-28', 'user-agent': 'fastify-multiauth' }
    const user = await getJson(`${GITHUB_API}/user`, httpTimeout, headers)
    const response = await fetch(`${GITHUB_API}/user/emails`, { headers, signal: AbortSignal.timeout(httpTimeout) })
    const emails: unknown = response.ok ? await response.json() : []
    const primary = Array.isArray(emails) ? emails.find((e) => isPlainObject(e) && e.primary === true) : undefined
    return primary === undefined ? user : { ...user, email: primary.email, email_verified: primary.verified === true }
  }

  /**
   * The code exchange (state and PKCE checked by @fastify/oauth2), the id_token (OpenID Connect)
   * and the profile: a refused login is a 401, anything the provider got wrong a 502.
   */
  async function providerIdentity (request: FastifyRequest, reply: FastifyReply, runtime: ProviderRuntime, p: typeof resolved[number], nonce: string): Promise<{ profile: OAuth2Profile, tokens: OAuth2Tokens }> {
    let tokens: OAuth2Tokens
    try {
      // @fastify/oauth2 checks state against its cookie, sends the PKCE verifier, and clears both cookies.
      const exchange = runtime.oauth2().getAccessTokenFromAuthorizationCodeFlow(request, reply)
      tokens = (await bounded(httpTimeout, exchange, (err) => err, () => providerError(`token endpoint did not answer in ${httpTimeout} ms`))).token as unknown as OAuth2Tokens
    } catch (err) {
      if (isOwnError(err)) throw err
      const status = (err as { output?: { statusCode?: number } }).output?.statusCode ?? 0
      if ((err as Error).message === 'Invalid state') throw refused(request, p.name, 'state', 'state does not match this browser\'s login', err)
      // The token endpoint refused the code (invalid_grant: replayed, expired, wrong verifier).
      if (status >= 400 && status < 500) throw refused(request, p.name, 'code-refused', 'token endpoint refused the code', (err as { data?: { payload?: unknown } }).data?.payload)
      throw providerError('token endpoint failed', err)
    }
    if (typeof tokens?.access_token !== 'string') throw providerError('token response without access_token')

    let claims: Record<string, unknown>
    if (runtime.kind === 'oidc') {
      const idClaims = await validateIdToken(runtime, p.clientId, tokens.id_token, nonce)
      if (idClaims instanceof IdTokenRefusal) throw refused(request, p.name, idClaims.code, idClaims.detail)
      claims = await oidcProfile(runtime, idClaims, tokens.access_token)
    } else {
      claims = await githubProfile(tokens.access_token)
    }
    const id = runtime.kind === 'oidc' ? claims.sub : claims.id
    if ((typeof id !== 'string' && typeof id !== 'number') || id === '') throw providerError('the provider identity has no subject')
    const profile: OAuth2Profile = {
      provider: p.name,
      id: String(id),
      email: optionalString(claims.email),
      emailVerified: typeof claims.email_verified === 'boolean' ? claims.email_verified : undefined,
      name: optionalString(claims.name) ?? optionalString(claims.login),
      claims
    }
    return { profile, tokens }
  }

  async function setup (app: FastifyInstance): Promise<void> {
    // Failures of the login routes reach the application's error handler (its HTML error page), whatever the order.
    const errorHandler = pluginRouteErrorHandler(app)
    for (const p of resolved) {
      const runtime = await registerProvider(app, p)
      const startPath = `${prefix}/${p.name}`

      app.get<{ Querystring: { next?: unknown } }>(startPath, { errorHandler }, async (request, reply) => {
        const next = request.query.next
        let nextIndex = -1
        if (next !== undefined) {
          nextIndex = allowedRedirects.indexOf(next as string)
          if (nextIndex === -1) {
            publishRefused(request, p.name, 'redirect')
            throw new BadRequestError('next is not an allowed redirect')
          }
        }
        const nonce = randomBytes(16).toString('base64url')
        // The provider is bound to the flow: a response arriving at another provider's callback is a mix-up (RFC 9700 §4.4).
        reply.setCookie(flowCookie, `${p.name}.${nonce}.${nextIndex}`, { ...flowCookieOptions, maxAge: 600 })
        const uri = new URL(await runtime.oauth2().generateAuthorizationUri(request, reply))
        if (runtime.kind === 'oidc') uri.searchParams.set('nonce', nonce)
        return await reply.redirect(uri.href)
      })

      app.get<{ Querystring: Record<string, unknown> }>(`${startPath}/callback`, { errorHandler }, async (request, reply) => {
        const flow = request.cookies[flowCookie]
        reply.clearCookie(flowCookie, flowCookieOptions)
        if (typeof request.query.error === 'string') throw refused(request, p.name, 'provider-denied', `provider answered error=${request.query.error.slice(0, 64)}`)
        if (typeof request.query.code !== 'string') throw refused(request, p.name, 'missing-code', 'no code in the callback')
        const dot = flow?.lastIndexOf('.') ?? -1
        if (flow === undefined || dot < 1) throw refused(request, p.name, 'no-flow', 'no login flow cookie: the login did not start in this browser')
        // Checked before the code goes anywhere: a code meant for another provider must never reach this one's token endpoint.
        if (!flow.startsWith(`${p.name}.`)) throw refused(request, p.name, 'mix-up', 'the login started with another provider (mix-up)')
        const iss = request.query.iss
        if (runtime.kind === 'oidc' && (iss !== undefined || runtime.issInResponse === true) && iss !== runtime.issuer) {
          throw refused(request, p.name, 'mix-up', 'authorization response iss is not this provider (RFC 9207)')
        }
        const nonce = flow.slice(p.name.length + 1, dot)
        const nextPath = allowedRedirects[Number(flow.slice(dot + 1))] ?? redirect

        let identity: { profile: OAuth2Profile, tokens: OAuth2Tokens }
        try {
          identity = await providerIdentity(request, reply, runtime, p, nonce)
        } catch (err) {
          // A network error, a JSON parse error quoting the provider's answer, a library's text: never to the client.
          const failure = isOwnError(err) ? err : providerError('provider exchange failed', err)
          // The refusals (401) were reported where they were decided; a provider failure (502) is reported here.
          if (failure instanceof OAuth2ProviderError) publishRefused(request, p.name, 'provider-error')
          throw failure
        }
        const { profile, tokens } = identity
        const user = await callAsync(ctx.timeoutMs, 'oauth2.findUser', request, findUser, profile, tokens, request)
        if (!user) throw refused(request, p.name, 'no-user', 'findUser refused the identity')
        let userId: string
        try {
          userId = await core.start(request, user, p.name)
        } catch (err) {
          // The session store failed while the new session was saved.
          throw storeError(err)
        }
        if (events['oauth2:login'].hasSubscribers) events['oauth2:login'].publish({ ...requestFields(request), provider: p.name, userId })
        return await reply.redirect(nextPath)
      })
    }
  }

  /** One scheme per provider, saying where its login starts (the API then reads the session cookie). */
  function securitySchemes (): Record<string, OpenApiSecurityScheme> {
    return Object.fromEntries(resolved.map((p): [string, OpenApiSecurityScheme] => {
      const description = `Sign in with GET ${prefix}/${p.name}; requests are then authenticated by the session cookie`
      return [`oauth2_${p.name}`, p.kind === 'oidc'
        ? { type: 'openIdConnect', openIdConnectUrl: `${(p.issuer as string).replace(/\/$/, '')}/.well-known/openid-configuration`, description }
        : {
            type: 'oauth2',
            description,
            flows: {
              authorizationCode: {
                authorizationUrl: `${GITHUB_AUTH.authorizeHost}${GITHUB_AUTH.authorizePath}`,
                tokenUrl: `${GITHUB_AUTH.tokenHost}${GITHUB_AUTH.tokenPath}`,
                scopes: Object.fromEntries(p.scope.map((s) => [s, s]))
              }
            }
          }]
    }))
  }

  return oauth2SessionMethod(core, setup, securitySchemes)
}
