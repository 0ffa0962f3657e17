// The named import (not the default) keeps the built CommonJS declarations (index.d.cts) able to
// name the error constructor types; a default import of an `export =` module loses its namespace there.
import { createError } from '@fastify/error'

/**
 * Every error the plugin produces at request time is one of these. They are plain
 * Fastify errors (`statusCode`, `code`, `message`), so the application's own
 * `setErrorHandler` decides the body. Messages never say whether a user exists.
 */
export const UnauthorizedError = createError('FST_MULTIAUTH_UNAUTHORIZED', '%s', 401)
export const ForbiddenError = createError('FST_MULTIAUTH_FORBIDDEN', '%s', 403)
export const BadRequestError = createError('FST_MULTIAUTH_BAD_REQUEST', 'Malformed credentials: %s', 400)
export const NotConfiguredError = createError(
  'FST_MULTIAUTH_NOT_CONFIGURED',
  'Authentication method "%s" is not configured',
  500
)
export const StoreUnavailableError = createError(
  'FST_MULTIAUTH_STORE_UNAVAILABLE',
  'Authentication store unavailable',
  503
)
export const CallbackTimeoutError = createError(
  'FST_MULTIAUTH_CALLBACK_TIMEOUT',
  'Authentication callback timed out',
  503
)
/** A user callback threw: the original error is kept as `cause` for the log, never sent to the client. */
export const CallbackError = createError(
  'FST_MULTIAUTH_CALLBACK_ERROR',
  'Authentication callback failed',
  500
)
/**
 * The OAuth2 provider failed or answered nonsense (not a refused login, which is a 401). The
 * message is fixed: what went wrong (a URL, a status, a library's text) is the `cause`, for the log.
 */
export const OAuth2ProviderError = createError(
  'FST_MULTIAUTH_OAUTH2_PROVIDER',
  'OAuth2 provider error',
  502
)
/** The store answered, but with a value the plugin cannot read (a corrupt record): fail closed, say nothing more. */
export const StoreDataError = createError(
  'FST_MULTIAUTH_STORE_DATA',
  'Authentication store returned unreadable data',
  500
)
export const TooManyRequestsError = createError(
  'FST_MULTIAUTH_TOO_MANY_REQUESTS',
  'Too many requests, retry in %s seconds',
  429
)

/**
 * Token endpoint errors (`/tokens/refresh`, `/tokens/revoke`): RFC 6749 §5.2 and RFC 7009 §2.2.1.
 * Each carries `oauthError`, the RFC's `error` value: without an error handler of your own the
 * plugin answers `{ "error": oauthError, "error_description": message }`; your handler can too.
 */
export const InvalidGrantError = oauthError(createError(
  'FST_MULTIAUTH_INVALID_GRANT',
  'The refresh token is invalid, expired, revoked or was already used',
  400
), 'invalid_grant')
export const InvalidTokenRequestError = oauthError(createError(
  'FST_MULTIAUTH_INVALID_REQUEST',
  'Invalid token request: %s',
  400
), 'invalid_request')
export const UnsupportedGrantTypeError = oauthError(createError(
  'FST_MULTIAUTH_UNSUPPORTED_GRANT_TYPE',
  'Only grant_type=refresh_token is supported here',
  400
), 'unsupported_grant_type')
export const UnsupportedTokenTypeError = oauthError(createError(
  'FST_MULTIAUTH_UNSUPPORTED_TOKEN_TYPE',
  'Access tokens cannot be revoked while token.revocation is off',
  400
), 'unsupported_token_type')

/** The RFC 6749 / RFC 7009 `error` code of a token endpoint error, on its prototype. */
function oauthError<T extends new (...args: any[]) => Error> (ErrorClass: T, code: string): T {
  Object.defineProperty(ErrorClass.prototype, 'oauthError', { value: code, enumerable: false })
  return ErrorClass
}

/**
 * A bounded queue of the plugin's own (argon2 verifications, failure-budget slots) did not
 * give this request its turn within `timeout`: the server is saturated, not the client wrong.
 * Sent with `Retry-After`.
 */
export const BusyError = createError(
  'FST_MULTIAUTH_BUSY',
  'Too many authentications in progress, retry in %s seconds',
  503
)

/** Thrown at registration or guard creation: a programming error, never at request time. */
export class MultiauthOptionError extends TypeError {
  readonly code = 'FST_MULTIAUTH_INVALID_OPTION'
  constructor (message: string) {
    super(`fastify-multiauth: ${message}`)
    this.name = 'MultiauthOptionError'
  }
}

export const MESSAGE_MISSING = 'Authentication required'
export const MESSAGE_INVALID = 'Invalid credentials'
export const MESSAGE_FORBIDDEN = 'Insufficient permissions'
