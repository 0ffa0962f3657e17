import { fastifyMultiauth } from './plugin.js'

export default fastifyMultiauth
export { fastifyMultiauth }
export type { MultiauthOptions, MultiauthVerifier } from './plugin.js'
export type { AuthInfo, AuthMethod, AuthSuccess, GuardOptions, GuardSpec, MethodName, MultiauthUser, RoleRequirement, UserRoles } from './types.js'
export { AuthFailure } from './types.js'
export type { BasicOptions, BasicUserRecord } from './methods/basic.js'
export type { ApiKeyOptions } from './methods/api-key.js'
export type {
  AuthTokens, IssuedTokens, TokenClaims, TokenClaimsInput, TokenKey, TokenKeyMaterial, TokenOptions, TokenRoutesOptions
} from './methods/token.js'
export type { MultiauthStore } from './stores/types.js'
export { MemoryStore } from './stores/memory.js'
export { RedisStore } from './stores/redis.js'
export type { RedisStoreOptions } from './stores/redis.js'
export type { MemoryStoreOptions } from './stores/memory.js'
export { hashPassword, verifyPassword, needsRehash, constantTimeEqual, PASSWORD_HASH_OPTIONS } from './password.js'
export {
  UnauthorizedError, ForbiddenError, BadRequestError, NotConfiguredError, StoreUnavailableError,
  CallbackTimeoutError, TooManyRequestsError, MultiauthOptionError
} from './errors.js'
