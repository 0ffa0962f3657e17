import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { MultiauthOptionError, NotConfiguredError } from './errors.js'
import { createGuard, createVerifier } from './guard.js'
import type { MultiauthGuardHook, RolesCallback } from './guard.js'
import { createApiKeyMethod } from '../methods/api-key/index.js'
import type { ApiKeyOptions } from '../methods/api-key/index.js'
import { createBasicMethod } from '../methods/basic/index.js'
import { NO_CACHE } from '../methods/basic/credential-cache.js'
import type { BasicOptions } from '../methods/basic/index.js'
import { createTokenMethod, tokensNotConfigured } from '../methods/token/index.js'
import type { TokenOptions } from '../methods/token/index.js'
import type { MethodContext } from '../methods/context.js'
import { setupOpenApi } from '../integrations/openapi.js'
import { redactCredentialsInLogs } from '../integrations/log-redaction.js'
import { createGuardLimits } from '../rate-limit/index.js'
import type { RateLimitOptions } from '../rate-limit/index.js'
import { createOAuth2Method } from '../methods/oauth2/index.js'
import type { OAuth2Options } from '../methods/oauth2/index.js'
import { createSessionMethod, sessionsNotConfigured } from '../methods/session/index.js'
import type { SessionOptions } from '../methods/session/index.js'
import { guardStore } from '../stores/guarded.js'
import { MemoryStore } from '../stores/memory.js'
import { evicts, isRedisStore } from '../stores/redis.js'
import type { RedisStore } from '../stores/redis.js'
import type { MultiauthStore } from '../stores/types.js'
import type { AuthInfo, AuthMethod, GuardSpec, MethodName } from './types.js'
import { durationMs } from './durations.js'
import type { Duration } from './durations.js'
import { checkFunction, checkKeys, checkObject, checkQuotable, checkString } from './validate.js'
import { warnUnsafeOptions } from './warnings.js'

export interface MultiauthOptions {
  /** Realm in every challenge. Default `"api"`. */
  realm?: string
  basic?: BasicOptions
  token?: TokenOptions
  apiKey?: ApiKeyOptions
  session?: SessionOptions
  /** OAuth2 / OpenID Connect login; needs `session`. */
  oauth2?: OAuth2Options
  /** The user's roles, for guards with `roles` (Flask-HTTPAuth's `get_user_roles`). */
  roles?: RolesCallback
  /** Shared state (revocations, refresh families, sessions, counters). Default: in-memory, one process. */
  store?: MultiauthStore
  /**
   * The longest an application callback or a custom store call may take (ms or `'10s'`): after
   * it, 503. It also bounds the waits for an argon2 slot and a failure-budget slot. 0 disables
   * (warning FSTMA005). Default 10 seconds.
   */
  callbackTimeout?: Duration
  /**
   * Failed-attempt budgets (per IP, per Basic username) and the per-credential budget;
   * counters in this process, or in Redis with a RedisStore. Omitted: the failure budgets at
   * their defaults when `basic` is configured, nothing otherwise. `false`: every limit off.
   */
  rateLimit?: RateLimitOptions | false
}

export type MultiauthVerifier = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

declare module 'fastify' {
  interface FastifyInstance {
    verifyBasic: MultiauthVerifier
    verifyToken: MultiauthVerifier
    verifyApiKey: MultiauthVerifier
    verifySession: MultiauthVerifier
    verifyOAuth2: MultiauthVerifier
    /**
     * Builds an `onRequest` hook (callback style: it completes synchronously when every step
     * answered synchronously); throws at once if the spec names a method that is not configured.
     */
    authGuard: (spec: GuardSpec) => MultiauthGuardHook
  }
  interface FastifyRequest {
    /**
     * Who was authenticated, how, with which roles and scopes; `null` until a method succeeded.
     * `request.auth.user` is what your callback returned, typed as your `MultiauthUser`.
     * (`request.user` holds the same at runtime; its type is opt-in: `import 'fastify-multiauth/request-user'`.)
     */
    auth: AuthInfo | null
  }
}

type MethodFactory = (options: unknown, ctx: MethodContext) => AuthMethod

/** One entry per method; a method is enabled by giving its option key. */
const FACTORIES: Record<MethodName, MethodFactory | undefined> = {
  basic: createBasicMethod,
  token: createTokenMethod,
  apiKey: createApiKeyMethod,
  session: createSessionMethod,
  // After session: a provider login starts a session.
  oauth2: createOAuth2Method
}

const VERIFIERS: ReadonlyArray<[MethodName, string]> = [
  ['basic', 'verifyBasic'],
  ['token', 'verifyToken'],
  ['apiKey', 'verifyApiKey'],
  ['session', 'verifySession'],
  ['oauth2', 'verifyOAuth2']
]

const OPTION_KEYS = ['realm', 'roles', 'store', 'callbackTimeout', 'rateLimit', ...Object.keys(FACTORIES)]
const STORE_METHODS = ['get', 'set', 'delete'] as const
const OPTIONAL_STORE_METHODS = ['getMany', 'setUnlessEqual', 'compareAndSet', 'addCapped', 'recordUsage', 'close'] as const

function checkStore (store: unknown): MultiauthStore {
  if (store === undefined) return new MemoryStore()
  if (typeof store !== 'object' || store === null) throw new MultiauthOptionError('store must be a MultiauthStore object (MemoryStore, RedisStore or your own)')
  for (const name of STORE_METHODS) {
    if (typeof (store as Record<string, unknown>)[name] !== 'function') {
      throw new MultiauthOptionError(`store.${name} must be a function (see MultiauthStore)`)
    }
  }
  for (const name of OPTIONAL_STORE_METHODS) {
    const method = (store as Record<string, unknown>)[name]
    if (method !== undefined && typeof method !== 'function') throw new MultiauthOptionError(`store.${name} must be a function when given`)
  }
  return store as MultiauthStore
}

/**
 * Refuses a Redis that may evict security state (every key the plugin writes has a TTL, so
 * `volatile-*` policies, the default of some managed services, can drop revocations), unless the
 * store says `allowEviction`. A policy that cannot be read (CONFIG disabled, Redis down at startup)
 * is a warning: the requests will fail closed if Redis is down, and the docs say what to set.
 */
async function checkEviction (app: FastifyInstance, store: RedisStore): Promise<void> {
  const policy = await store.evictionPolicy()
  if (policy === undefined) {
    app.log.warn('multiauth: could not read the Redis maxmemory-policy (CONFIG GET refused or Redis unreachable); make sure it is "noeviction", see docs/stores.md')
  } else if (evicts(policy)) {
    if (!store.allowEviction) {
      throw new MultiauthOptionError(`the Redis server's maxmemory-policy is "${policy}", which can evict revocations, "log out everywhere" times and session tombstones under memory pressure (they would pass again); set maxmemory-policy noeviction, or pass allowEviction: true to RedisStore to accept that risk (docs/stores.md)`)
    }
    app.log.warn({ policy }, 'multiauth: the Redis maxmemory-policy can evict security state (allowEviction: true)')
  }
}

/**
 * `waitForReplicas` with fewer replicas connected than it waits for: every revocation, logout and
 * counted failure would answer 503. A warning, not a refusal: a replica may be restarting.
 */
async function checkReplicas (app: FastifyInstance, store: RedisStore): Promise<void> {
  const wanted = store.waitForReplicas?.replicas
  if (wanted === undefined) return
  const connected = await store.connectedReplicas()
  if (connected === undefined) {
    app.log.warn({ waitForReplicas: wanted }, 'multiauth: could not read how many replicas are connected (INFO replication); revocations answer 503 while fewer than waitForReplicas acknowledge them')
  } else if (connected < wanted) {
    app.log.warn({ waitForReplicas: wanted, connected }, 'multiauth: fewer replicas connected than RedisStore waitForReplicas: revocations, logouts and counted failed attempts answer 503 until enough replicas acknowledge them')
  }
}

/** A `verify*` decorator for a method that is not configured: fails closed, never leaves a route open. */
function notConfigured (name: MethodName): MultiauthVerifier {
  return async function verifyNotConfigured (request) {
    request.log.error(`multiauth: a route uses the "${name}" method, but it is not configured; pass the "${name}" option when registering fastify-multiauth`)
    throw new NotConfiguredError(name)
  }
}

async function multiauth (app: FastifyInstance, raw: MultiauthOptions): Promise<void> {
  const options = checkObject(raw ?? {}, 'options') as MultiauthOptions
  checkKeys(options as Record<string, unknown>, OPTION_KEYS, 'options')
  const realm = options.realm ?? 'api'
  checkString(realm, 'realm')
  checkQuotable(realm, 'realm')
  checkFunction(options.roles, 'roles', false)
  const timeoutMs = durationMs(options.callbackTimeout, 'callbackTimeout', { min: 0 }) ?? 10_000

  const store = checkStore(options.store)
  if (isRedisStore(store)) {
    await checkEviction(app, store)
    await checkReplicas(app, store)
  }
  const methods = new Map<MethodName, AuthMethod>()
  const ctx: MethodContext = { realm, store: guardStore(store, timeoutMs), applicationStore: options.store !== undefined, methods, timeoutMs }
  for (const [name, factory] of Object.entries(FACTORIES) as Array<[MethodName, MethodFactory | undefined]>) {
    const methodOptions = (options as Record<string, unknown>)[name]
    if (methodOptions === undefined) continue
    if (factory === undefined) throw new MultiauthOptionError(`the "${name}" method is not available in this version`)
    methods.set(name, factory(methodOptions, ctx))
  }
  // Guards exist before any method's setup: a setup that awaits a registration (session)
  // loads what an earlier setup queued (the token routes), and those routes call authGuard.
  // The limits come first for the same reason: every guard must be built with them.
  const limits = await createGuardLimits(app, options.rateLimit, {
    store: ctx.store,
    timeoutMs,
    basic: methods.has('basic'),
    keyRecords: (options.apiKey as { findKey?: unknown } | undefined)?.findKey !== undefined
  })
  const guardContext = { methods, roles: options.roles, timeoutMs, limits }
  app.decorate('authGuard', (spec: GuardSpec) => createGuard(guardContext, spec))
  for (const [name, decorator] of VERIFIERS) {
    app.decorate(decorator, methods.has(name) ? createVerifier(guardContext, name) : notConfigured(name))
  }
  // Before any setup: a method's setup may create child contexts (the token routes), and a child
  // context's requests only get the decorations its parent had when it was created.
  // Another plugin (the application's own @fastify/jwt, @fastify/passport) may own `request.user` already.
  if (!app.hasRequestDecorator('user')) app.decorateRequest('user', null as never) // typed by whoever declares request.user (ours: opt-in)
  app.decorateRequest('auth', null)
  // Always there, failing closed when their method is not configured (like the verify* decorators).
  if (!methods.has('token')) app.decorate('authTokens', tokensNotConfigured)
  if (!methods.has('session')) app.decorate('authSessions', sessionsNotConfigured)
  if (!methods.has('basic')) app.decorate('authCache', NO_CACHE)
  // The application's close releases what the store holds (RedisStore: the connection it owns).
  if (typeof store.close === 'function') app.addHook('onClose', async () => { await store.close?.() })
  // What multiauthOpenApi's @fastify/swagger transforms read: the configured methods.
  setupOpenApi(app, methods)
  // Credentials never reach the logs, on any route or 404, whatever the registration order.
  redactCredentialsInLogs(app)
  for (const method of methods.values()) await method.setup?.(app)
  // Last: only a configuration that registered without an error is worth a warning.
  warnUnsafeOptions(app, options, timeoutMs)
}

export const fastifyMultiauth = fp(multiauth, {
  fastify: '5.x',
  name: 'fastify-multiauth'
})
