import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import {
  CredentialsInvalidError, CredentialsMissingError, InvalidGrantError, InvalidTokenRequestError, MultiauthOptionError,
  UnsupportedGrantTypeError, UnsupportedTokenTypeError
} from '../../core/errors.js'
import { pluginRouteErrorHandler } from '../../core/route-errors.js'
import type { MethodName } from '../../core/types.js'
import { checkKeys, checkObject, checkString } from '../../core/validate.js'
import type { MethodContext } from '../context.js'
import { kVerifiedAt, REFRESH_TOKEN_MAX_LENGTH } from './lifecycle.js'
import type { AuthTokens, IssuedTokens, TokenRoutesOptions } from './types.js'

// The opt-in HTTP routes: `POST /tokens` (a password login that answers a token, as Flask-HTTPAuth applications write it), and the token
// endpoint routes `/tokens/refresh` (RFC 6749 §6) and `/tokens/revoke` (RFC 7009).

export interface PreparedRoutes { prefix: string, methods: MethodName[] }

/** Without `ctx`: checks the options only (the factory runs before later methods such as `session` exist). */
export function prepareRoutes (raw: unknown, ctx: MethodContext | undefined, canSign: boolean): PreparedRoutes | undefined {
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
      // A token must never mint a token (it would outlive any revocation of its parent), and an API key is not a login.
      if (m !== 'basic' && m !== 'session') throw new MultiauthOptionError(`token.routes.methods: "${String(m)}" cannot obtain tokens (allowed: basic, session)`)
      if (!configured(m)) throw new MultiauthOptionError(`token.routes.methods: "${m}" is not configured`)
      return m
    })
  }
  return { prefix, methods }
}

/** What the routes need from the token method. */
export interface TokenRoutesContext {
  ctx: MethodContext
  helpers: AuthTokens
  routes: PreparedRoutes
  challenge: string
  refreshOn: boolean
  revocation: boolean
  /** The claims of a valid access token (signature, typ, iss/aud, exp), or `undefined`. Store state is not consulted. */
  verifiedClaims: (token: string) => Record<string, unknown> | undefined
}

const ISSUED_SCHEMA = {
  type: 'object',
  required: ['token', 'expiration', 'access_token', 'token_type', 'expires_in'],
  properties: {
    token: { type: 'string', description: 'Access token (JWT), sent as `Authorization: Bearer <token>`' },
    expiration: { type: 'integer', description: 'Access-token lifetime in seconds' },
    access_token: { type: 'string', description: 'The access token again, by its RFC 6749 name' },
    token_type: { type: 'string', enum: ['Bearer'] },
    expires_in: { type: 'integer', description: 'The lifetime again, by its RFC 6749 name' },
    refresh_token: { type: 'string', description: 'Opaque refresh token (when refresh tokens are on); single use' }
  }
} as const
// Error bodies are documented, never constrained: `additionalProperties` keeps whatever shape the
// application's error handler sends (a response schema would otherwise strip its fields).
const ERROR_SCHEMA = {
  type: 'object',
  additionalProperties: true,
  description: 'Fastify\'s error body, or your error handler\'s',
  properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, error: { type: 'string' }, message: { type: 'string' } }
} as const
/** RFC 6749 §5.2 / RFC 7009 §2.2.1 (what the plugin answers when the application has no error handler). */
const OAUTH_ERROR_SCHEMA = {
  type: 'object',
  additionalProperties: true,
  description: 'RFC 6749 §5.2 error (or your error handler\'s body)',
  properties: { error: { type: 'string' }, error_description: { type: 'string' } }
} as const
const TOKEN_PARAM = { type: 'string', minLength: 1, maxLength: REFRESH_TOKEN_MAX_LENGTH } as const
const REFRESH_BODY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    grant_type: { type: 'string', description: 'Optional; when present it must be `refresh_token` (RFC 6749 §6)' },
    refresh_token: TOKEN_PARAM
  }
} as const
const REVOKE_BODY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    token: { type: 'string', minLength: 1, maxLength: 8192, description: 'The token to revoke: a refresh token or an access token (RFC 7009 §2.1)' },
    token_type_hint: { type: 'string', description: '`refresh_token` or `access_token` (RFC 7009 §2.1); other values are ignored' },
    refresh_token: { ...TOKEN_PARAM, description: 'Same as `token` with a refresh token (kept from 0.1)' },
    all: { type: 'boolean', description: 'Log out everywhere: revoke every token of the user authenticated by the Bearer token' }
  }
} as const

const FORM = 'application/x-www-form-urlencoded'

/**
 * RFC 6749 requests are form-encoded (§4.1.3, §6; RFC 7009 §2.1). Parsed with the platform's
 * URLSearchParams, only inside the token routes' own scope; a repeated parameter is refused
 * (RFC 6749 §3.2: "MUST NOT be included more than once").
 */
function parseForm (_request: FastifyRequest, body: string, done: (err: Error | null, body?: unknown) => void): void {
  const parsed: Record<string, string> = {}
  for (const [name, value] of new URLSearchParams(body)) {
    if (Object.hasOwn(parsed, name)) return done(new InvalidTokenRequestError(`parameter ${name} repeated`))
    parsed[name] = value
  }
  done(null, parsed)
}

/**
 * The body of `POST /tokens` and `/tokens/refresh`: RFC 6749 §5.1's names, and `token` /
 * `expiration`, the names of the route this one grew from (Flask-HTTPAuth's `{ token, expiration }`).
 */
function wireTokens (issued: IssuedTokens): Record<string, unknown> {
  const body: Record<string, unknown> = {
    token: issued.accessToken,
    expiration: issued.expiresIn,
    access_token: issued.accessToken,
    token_type: issued.tokenType,
    expires_in: issued.expiresIn
  }
  if (issued.refreshToken !== undefined) body.refresh_token = issued.refreshToken
  return body
}

/** A compact JWS has exactly two dots; our refresh tokens (base64url) have none. */
function looksLikeJwt (token: string): boolean {
  return token.split('.').length === 3
}

export function tokenRoutes (options: TokenRoutesContext) {
  const { ctx, helpers, routes, challenge, refreshOn, revocation, verifiedClaims } = options
  const loginChallenges = routes.methods.flatMap((m) => {
    const c = ctx.methods.get(m)?.challenge
    return c === undefined ? [] : [c]
  })

  function refuse (reply: FastifyReply, challenges: string | string[], error: Error): Error {
    reply.header('www-authenticate', challenges)
    return error
  }

  /** Schema errors (`attachValidation`) as RFC 6749 `invalid_request`. */
  function checkBody (request: FastifyRequest): Record<string, unknown> {
    if (request.validationError !== undefined) throw new InvalidTokenRequestError(request.validationError.message)
    return (request.body ?? {}) as Record<string, unknown>
  }

  return async function multiauthTokenRoutes (app: FastifyInstance): Promise<void> {
    if (!app.hasContentTypeParser(FORM)) app.addContentTypeParser(FORM, { parseAs: 'string' }, parseForm)
    // RFC 6749 §5.1 (and §5.2 for errors): token responses are never cached. Set first, so every
    // answer of these routes carries it, the guard's 401 and your error handler's body included.
    app.addHook('onRequest', (request, reply, done) => {
      reply.header('cache-control', 'no-store')
      reply.header('pragma', 'no-cache')
      // Before the guard checks the password: the time a token minted by this request counts from.
      ;(request as FastifyRequest & { [kVerifiedAt]?: number })[kVerifiedAt] = Date.now()
      done()
    })
    const errorHandler = pluginRouteErrorHandler(app)
    // A request without a body is validated as `{}`: the handlers say what is missing, in RFC terms.
    const emptyBody = async (request: FastifyRequest): Promise<void> => { request.body ??= {} }

    app.post('/', {
      onRequest: app.authGuard(routes.methods),
      errorHandler,
      schema: {
        summary: 'Obtain an access token',
        description: `Needs a password-authenticated request (${routes.methods.join(' or ')}); a request authenticated by a token is refused.`,
        response: { 200: ISSUED_SCHEMA, 401: ERROR_SCHEMA }
      }
    }, async (request, reply) => {
      // A token cannot mint a token (Basic with allowToken reports method 'token').
      if (request.auth === null || request.auth.method === 'token') throw refuse(reply, loginChallenges, new CredentialsInvalidError())
      return wireTokens(await helpers.issue(request.auth.user, { request }))
    })

    if (refreshOn) {
      app.post('/refresh', {
        errorHandler,
        attachValidation: true,
        preValidation: emptyBody,
        schema: {
          summary: 'Rotate a refresh token',
          description: 'Returns a new access token and a new refresh token (RFC 6749 §6; JSON or form-encoded). ' +
            'Presenting a refresh token twice revokes every token of its login.',
          body: REFRESH_BODY,
          response: { 200: ISSUED_SCHEMA, 400: OAUTH_ERROR_SCHEMA }
        }
      }, async (request) => {
        const body = checkBody(request)
        if (body.grant_type !== undefined && body.grant_type !== 'refresh_token') throw new UnsupportedGrantTypeError()
        if (typeof body.refresh_token !== 'string') throw new InvalidTokenRequestError('refresh_token is missing')
        const issued = await helpers.refresh(body.refresh_token, { request })
        if (issued === null) throw new InvalidGrantError()
        return wireTokens(issued)
      })
    }

    if (refreshOn || revocation) {
      app.post('/revoke', {
        onRequest: app.authGuard({ methods: ['token'], optional: true }),
        errorHandler,
        attachValidation: true,
        preValidation: emptyBody,
        schema: {
          summary: 'Log out (revoke tokens)',
          description: 'RFC 7009: revokes `token` (a refresh token with its whole family, or an access token) and answers 200 ' +
            'whether or not it was valid. A Bearer access token in Authorization is revoked too; `all: true` with one ' +
            'revokes every token of its user.',
          body: REVOKE_BODY,
          response: { 200: { type: 'null', description: 'Revoked (or nothing to revoke)' }, 400: OAUTH_ERROR_SCHEMA, 401: ERROR_SCHEMA }
        }
      }, async (request, reply) => {
        const body = checkBody(request)
        const auth = request.auth
        // Only a token of this service: a provider's (`token.issuers`, with `issuer`) names no user of ours.
        const bearer = auth !== null && auth.method === 'token' && auth.issuer === undefined ? auth : undefined
        if (body.token !== undefined && body.refresh_token !== undefined) throw new InvalidTokenRequestError('send token or refresh_token, not both')
        const token = (body.token ?? body.refresh_token) as string | undefined
        // "Log out everywhere" needs to know whose tokens: the Bearer token says.
        if (body.all === true && bearer === undefined) throw refuse(reply, challenge, new CredentialsMissingError())
        if (token === undefined && bearer === undefined) throw new InvalidTokenRequestError('token is missing')

        // The format tells the two kinds apart, so token_type_hint is not needed (RFC 7009 §2.1 lets us ignore it).
        const accessToken = token !== undefined && body.refresh_token === undefined && looksLikeJwt(token)
        // Without revocation an access token cannot be revoked: answering 200 would be a lie (RFC 7009 §2.2.1).
        if (!revocation && (accessToken || (token === undefined && body.all !== true))) throw new UnsupportedTokenTypeError()

        if (bearer !== undefined) {
          if (revocation) await helpers.revoke(bearer.claims, { request })
          if (body.all === true) await helpers.revokeAll(bearer.claims.sub as string, { request })
        }
        if (token !== undefined) {
          if (accessToken) {
            // An invalid token is not an error (RFC 7009 §2.2): there is nothing to revoke.
            const claims = verifiedClaims(token)
            if (claims !== undefined) await helpers.revoke(claims, { request })
          } else if (refreshOn) {
            await helpers.revokeRefreshToken(token, { request })
          }
        }
        return await reply.code(200).send()
      })
    }
  }
}
