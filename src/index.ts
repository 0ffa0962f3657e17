import { fastifyMultiauth } from './core/plugin.js'

export default fastifyMultiauth
export { fastifyMultiauth }
export type { MultiauthOptions, MultiauthVerifier } from './core/plugin.js'
export type { MultiauthGuardHook } from './core/guard.js'
export { multiauthOpenApi } from './integrations/openapi.js'
export type { AuthInfo, AuthMethod, AuthSuccess, Awaitable, Falsy, GuardOptions, GuardSpec, MethodName, MultiauthUser, OpenApiSecurityScheme, RoleRequirement, UserRoles } from './core/types.js'
export { AuthFailure } from './core/outcome.js'
export type { BasicOptions, BasicUserRecord } from './methods/basic/index.js'
export type { ApiKeyOptions } from './methods/api-key/index.js'
export type { SessionOptions, SessionCsrfOptions, SessionRecord } from './methods/session/index.js'
export { login, logout, SessionStoreAdapter } from './methods/session/index.js'
export type { OAuth2Options, OAuth2ProviderOptions, OAuth2Profile, OAuth2Tokens } from './methods/oauth2/index.js'
export type {
  AuthTokens, IssuedTokens, TokenClaims, TokenClaimsInput, TokenKey, TokenKeyMaterial, TokenOptions, TokenRoutesOptions
} from './methods/token/index.js'
export type { MultiauthStore } from './stores/types.js'
export { MemoryStore } from './stores/memory.js'
export { RedisStore } from './stores/redis.js'
export type { RedisStoreOptions } from './stores/redis.js'
export type { MemoryStoreOptions } from './stores/memory.js'
export { hashPassword, verifyPassword, needsRehash, constantTimeEqual, PASSWORD_HASH_OPTIONS } from './methods/basic/password.js'
export {
  UnauthorizedError, ForbiddenError, BadRequestError, NotConfiguredError, StoreUnavailableError,
  CallbackTimeoutError, CallbackError, TooManyRequestsError, BusyError, OAuth2ProviderError, MultiauthOptionError
} from './core/errors.js'
export { clearVerifiedCredentials } from './methods/basic/credential-cache.js'
export type { VerifiedCredentialCacheOptions } from './methods/basic/credential-cache.js'
export type { RateLimitOptions, FailureBudget, UsernameFailureBudget } from './rate-limit/index.js'
export type { RolesCallback } from './core/guard.js'
export {
  generateApiKey, rotateApiKey, parseApiKey, isApiKey, apiKeyId, hashApiKey, describeApiKey, apiKeyMatches
} from './methods/api-key/key-format.js'
export type {
  ApiKeyRecord, GeneratedApiKey, GenerateApiKeyOptions, KeyRateLimit, ParsedApiKey, RotateApiKeyOptions,
  RotatedApiKey, RotatedFrom, RotationSource
} from './methods/api-key/key-format.js'
