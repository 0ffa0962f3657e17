// The named import (not the default) keeps the built CommonJS declarations (index.d.cts) able to
// name the error constructor types; a default import of an `export =` module loses its namespace there.
import { createError } from '@fastify/error'

// Every error the plugin raises is a @fastify/error class with a stable `code`: a plain Fastify
// error (`statusCode`, `code`, `message`), so the application's own `setErrorHandler` decides the
// body. Messages never say whether a user exists. Branch on `code`, not on the message.

type ErrorClass = ReturnType<typeof createError>

/**
 * A class whose message has a `%s` detail, with a meaningful message when it is made without one
 * (`new BadRequestError()` must not read "Malformed credentials: %s").
 */
function withDefaultDetail<C extends ErrorClass> (Base: C, detail: string): C {
  const Defaulted = class extends (Base as unknown as new (...args: unknown[]) => Error) {
    constructor (...args: unknown[]) {
      const first = args[0]
      super(...(args.length > 0 && (typeof first !== 'object' || first === null) ? args : [detail, ...args]))
    }
  }
  Object.defineProperty(Defaulted, 'name', { value: Base.name })
  return Defaulted as unknown as C
}

/** No credentials of any method the guard accepts were presented (401, with every challenge). */
export const CredentialsMissingError = createError('FST_MULTIAUTH_CREDENTIALS_MISSING', 'Authentication required', 401)
/** Credentials were presented and refused: unknown user and wrong password alike (401). */
export const CredentialsInvalidError = createError('FST_MULTIAUTH_CREDENTIALS_INVALID', 'Invalid credentials', 401)
/** Authenticated, but a role or scope the route needs is missing (403). */
export const ForbiddenError = createError('FST_MULTIAUTH_FORBIDDEN', 'Insufficient permissions', 403)
/** An unsafe request carrying the session cookie from another site (403). */
export const CrossSiteError = createError('FST_MULTIAUTH_CROSS_SITE', 'Cross-site request refused', 403)
/** Credentials of a scheme the plugin owns that cannot be decoded (400). */
export const BadRequestError = withDefaultDetail(createError('FST_MULTIAUTH_BAD_REQUEST', 'Malformed credentials: %s', 400), 'cannot be decoded')
export const NotConfiguredError = withDefaultDetail(createError('FST_MULTIAUTH_NOT_CONFIGURED', 'Authentication method "%s" is not configured', 500), 'unknown')
export const StoreUnavailableError = createError('FST_MULTIAUTH_STORE_UNAVAILABLE', 'Authentication store unavailable', 503)
export const CallbackTimeoutError = createError('FST_MULTIAUTH_CALLBACK_TIMEOUT', 'Authentication callback timed out', 503)
/**
 * A trusted token issuer (`token.issuers`) could not be reached or answered nonsense while its
 * keys were needed: discovery failed, or the token names a key the last good key set lacks. The
 * message is fixed; the URL and the failure are the `cause`, for the log.
 */
export const IssuerUnavailableError = createError('FST_MULTIAUTH_ISSUER_UNAVAILABLE', 'Token issuer unavailable', 503)
/** A user callback threw: the original error is kept as `cause` for the log, never sent to the client. */
export const CallbackError = createError('FST_MULTIAUTH_CALLBACK_ERROR', 'Authentication callback failed', 500)
/**
 * The OAuth2 provider failed or answered nonsense (not a refused login, which is a 401). The
 * message is fixed: what went wrong (a URL, a status, a library's text) is the `cause`, for the log.
 */
export const OAuth2ProviderError = createError('FST_MULTIAUTH_OAUTH2_PROVIDER', 'OAuth2 provider error', 502)
/** The store answered, but with a value the plugin cannot read (a corrupt record): fail closed, say nothing more. */
export const StoreDataError = createError('FST_MULTIAUTH_STORE_DATA', 'Authentication store returned unreadable data', 500)
/** A rate limit or failure budget is spent (429, with `Retry-After`). */
export const TooManyRequestsError = withDefaultDetail(createError('FST_MULTIAUTH_TOO_MANY_REQUESTS', 'Too many requests, retry in %s seconds', 429), 'a few')
/**
 * A bounded queue of the plugin's own (argon2 verifications, failure-budget slots) did not give
 * this request its turn within `callbackTimeout`: the server is saturated, not the client wrong.
 * Sent with `Retry-After`.
 */
export const BusyError = withDefaultDetail(createError('FST_MULTIAUTH_BUSY', 'Too many authentications in progress, retry in %s seconds', 503), 'a few')

/**
 * Token endpoint errors (`/tokens/refresh`, `/tokens/revoke`): RFC 6749 §5.2 and RFC 7009 §2.2.1.
 * Each carries `oauthError`, the RFC's `error` value: without an error handler of your own the
 * plugin answers `{ "error": oauthError, "error_description": message }`; your handler can too.
 */
export const InvalidGrantError = tokenEndpointError('FST_MULTIAUTH_INVALID_GRANT', 'The refresh token is invalid, expired, revoked or was already used', 'invalid_grant')
/** A parameter is missing, malformed or repeated (RFC 6749 §3.2, §5.2). */
export const InvalidTokenRequestError = withDefaultDetail(tokenEndpointError('FST_MULTIAUTH_INVALID_REQUEST', 'Invalid token request: %s', 'invalid_request'), 'a parameter is missing or malformed')
export const UnsupportedGrantTypeError = tokenEndpointError('FST_MULTIAUTH_UNSUPPORTED_GRANT_TYPE', 'Only grant_type=refresh_token is supported here', 'unsupported_grant_type')
/** RFC 7009 §2.2.1: the server cannot revoke this kind of token. */
export const UnsupportedTokenTypeError = tokenEndpointError('FST_MULTIAUTH_UNSUPPORTED_TOKEN_TYPE', 'Access tokens cannot be revoked while token.revocation is off', 'unsupported_token_type')

/** A 400 of the token endpoint, carrying the RFC 6749 / RFC 7009 `error` code as `oauthError` (on its prototype). */
function tokenEndpointError (code: string, message: string, oauthCode: string): ErrorClass {
  const ErrorClass = createError(code, message, 400)
  Object.defineProperty(ErrorClass.prototype, 'oauthError', { value: oauthCode, enumerable: false })
  return ErrorClass
}

/**
 * Thrown at registration or guard creation (a programming error, never at request time), naming
 * the option path. A `TypeError`, with the code `FST_MULTIAUTH_INVALID_OPTION`.
 */
export const MultiauthOptionError = withDefaultDetail(createError('FST_MULTIAUTH_INVALID_OPTION', 'fastify-multiauth: %s', 500, TypeError), 'invalid option')
