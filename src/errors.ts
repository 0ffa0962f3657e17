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
/** The OAuth2 provider failed or answered nonsense (not a refused login, which is a 401). */
export const OAuth2ProviderError = createError(
  'FST_MULTIAUTH_OAUTH2_PROVIDER',
  'OAuth2 provider error: %s',
  502
)
export const TooManyRequestsError = createError(
  'FST_MULTIAUTH_TOO_MANY_REQUESTS',
  'Too many requests, retry in %s seconds',
  429
)

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
