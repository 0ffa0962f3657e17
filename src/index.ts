// The public surface of fastify-multiauth: the plugin, its option and request types, the stores,
// the helpers an application calls itself (password hashing, API-key format), and the error classes.
import { fastifyMultiauth } from './core/plugin.js'

export default fastifyMultiauth
export { fastifyMultiauth }
export type { MultiauthOptions, MultiauthVerifier } from './core/plugin.js'
export type { MultiauthGuardHook, RolesCallback } from './core/guard.js'
export type {
  AuthInfo, Awaitable, Falsy, GuardOptions, GuardSpec, MethodName, MultiauthUser, OpenApiSecurityScheme, RoleRequirement, UserRoles
} from './core/types.js'
export type { Duration } from './core/durations.js'

// Methods' options
export type { BasicOptions, BasicCredential } from './methods/basic/index.js'
export type { ApiKeyOptions, ApiKeyUsage, ApiKeyUsageOptions, ApiKeyUsageTotals } from './methods/api-key/index.js'
export type { SessionOptions, SessionCsrfOptions, AuthSessions } from './methods/session/index.js'
export type { OAuth2Options, OAuth2ProviderOptions, OAuth2Profile, OAuth2Tokens } from './methods/oauth2/index.js'
export type {
  AuthTokens, IssuedTokens, IssueOptions, RevokeOptions, TokenClaims, TokenClaimsInput, TokenKey, TokenKeyMaterial, TokenOptions, TokenRoutesOptions, PublishKeysOptions,
  TrustedIssuer, TrustedIssuerAlgorithm
} from './methods/token/index.js'
export type { AuthCache, VerifiedCredentialCacheOptions } from './methods/basic/credential-cache.js'
export type { RateLimitOptions, FailureBudget, UsernameFailureBudget } from './rate-limit/index.js'

// Stores
export type { MultiauthStore, WriteOptions } from './stores/types.js'
export { MemoryStore } from './stores/memory.js'
export type { MemoryStoreOptions } from './stores/memory.js'
export { RedisStore } from './stores/redis.js'
export type { RedisStoreConnection, RedisStoreOptions, RedisStoreSettings } from './stores/redis.js'

// Helpers for the application
export { hashPassword, verifyPassword, needsRehash, constantTimeEqual, PASSWORD_HASH_OPTIONS } from './methods/basic/password.js'
export {
  generateApiKey, rotateApiKey, parseApiKey, isApiKey, apiKeyId, hashApiKey, describeApiKey, apiKeyMatches
} from './methods/api-key/key-format.js'
export { readApiKeyUsage } from './methods/api-key/usage.js'
export type {
  ApiKeyRecord, GeneratedApiKey, GenerateApiKeyOptions, KeyRateLimit, ParsedApiKey, RotateApiKeyOptions,
  RotatedApiKey, RotatedFrom, RotationSource
} from './methods/api-key/key-format.js'
export { multiauthOpenApi } from './integrations/openapi.js'

// Security events (node:diagnostics_channel; docs/events.md)
export { MULTIAUTH_CHANNELS, AUTHENTICATE_TRACING_CHANNEL, REFUSAL_REASONS, subscribeMultiauth, OAUTH2_REFUSAL_REASONS } from './core/events.js'
export type {
  MultiauthEvents, MultiauthEventName, RefusalReason, OAuth2RefusalReason, RequestFields, MaybeRequestFields, AuthenticateContext,
  AuthenticatedEvent, RefusedEvent, ForbiddenEvent, RateLimitedEvent, TokenIssuedEvent, TokenRefreshedEvent, TokenRefreshReusedEvent,
  TokenRevokedEvent, TokenRevokedAllEvent, SessionLoginEvent, SessionLogoutEvent, SessionExpiredEvent, OAuth2LoginEvent, OAuth2RefusedEvent,
  ApiKeyUsedEvent, StoreUnavailableEvent, StoreRecoveredEvent, CallbackErrorEvent, CallbackTimeoutEvent, CallbackName
} from './core/events.js'

// Errors (for `instanceof` and your own code; branch on `err.code`)
export {
  CredentialsMissingError, CredentialsInvalidError, ForbiddenError, CrossSiteError, BadRequestError, NotConfiguredError,
  StoreUnavailableError, StoreDataError, CallbackTimeoutError, CallbackError, TooManyRequestsError, BusyError,
  OAuth2ProviderError, IssuerUnavailableError, InvalidGrantError, InvalidTokenRequestError, UnsupportedGrantTypeError, UnsupportedTokenTypeError,
  MultiauthOptionError
} from './core/errors.js'
