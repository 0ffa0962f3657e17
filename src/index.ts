import { fastifyMultiauth } from './plugin.js'

export default fastifyMultiauth
export { fastifyMultiauth }
export type { MultiauthOptions, MultiauthVerifier } from './plugin.js'
export type { MultiauthGuardHook } from './guard.js'
export { multiauthOpenApi } from './openapi.js'
export type { AuthInfo, AuthMethod, AuthSuccess, Awaitable, Falsy, GuardOptions, GuardSpec, MethodName, MultiauthUser, OpenApiSecurityScheme, RoleRequirement, UserRoles } from './types.js'
export { AuthFailure } from './types.js'
export type { BasicOptions, BasicUserRecord } from './methods/basic.js'
export type { ApiKeyOptions } from './methods/api-key.js'
export type { SessionOptions, SessionCsrfOptions, SessionRecord } from './methods/session.js'
export { login, logout, SessionStoreAdapter } from './methods/session.js'
export type { OAuth2Options, OAuth2ProviderOptions, OAuth2Profile, OAuth2Tokens } from './methods/oauth2.js'
export type {
  AuthTokens, IssuedTokens, TokenClaims, TokenClaimsInput, TokenKey, TokenKeyMaterial, TokenOptions, TokenRoutesOptions
} from './methods/token/index.js'
export type { MultiauthStore } from './stores/types.js'
export { MemoryStore } from './stores/memory.js'
export { RedisStore } from './stores/redis.js'
export type { RedisStoreOptions } from './stores/redis.js'
export type { MemoryStoreOptions } from './stores/memory.js'
export { hashPassword, verifyPassword, needsRehash, constantTimeEqual, PASSWORD_HASH_OPTIONS } from './password.js'
export {
  UnauthorizedError, ForbiddenError, BadRequestError, NotConfiguredError, StoreUnavailableError,
  CallbackTimeoutError, CallbackError, TooManyRequestsError, BusyError, OAuth2ProviderError, MultiauthOptionError
} from './errors.js'
export { clearVerifiedCredentials } from './credential-cache.js'
export type { VerifiedCredentialCacheOptions } from './credential-cache.js'
export type { RateLimitOptions, FailureBudget, UsernameFailureBudget } from './rate-limit.js'
export type { RolesCallback } from './guard.js'
export {
  generateApiKey, rotateApiKey, parseApiKey, isApiKey, apiKeyId, hashApiKey, describeApiKey, apiKeyMatches
} from './api-keys.js'
export type {
  ApiKeyRecord, GeneratedApiKey, GenerateApiKeyOptions, KeyRateLimit, ParsedApiKey, RotateApiKeyOptions,
  RotatedApiKey, RotatedFrom, RotationSource
} from './api-keys.js'
