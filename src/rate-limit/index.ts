import fastifyRateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { RateLimitPluginOptions } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { MultiauthOptionError, TooManyRequestsError } from '../core/errors.js'
import { events, requestFields } from '../core/events.js'
import type { RateLimitedEvent } from '../core/events.js'
import type { GuardLimits, GuardRun, VerifyOutcome } from '../core/guard.js'
import { sha256Text } from '../lib/hash.js'
import { isRedisStore } from '../stores/redis.js'
import { callbackError } from '../core/callbacks.js'
import type { MultiauthStore } from '../stores/types.js'
import { AuthFailure, isThenable } from '../core/outcome.js'
import type { AuthMethod, AuthSuccess } from '../core/types.js'
import { checkFunction, checkKeys, checkObject } from '../core/validate.js'
import { durationMs } from '../core/durations.js'
import { LOCAL_CACHE, LocalCounter } from './counters.js'
import type { Budget, LimitResult, Limiter } from './counters.js'
import { Attempts, kFailureGates } from './gates.js'
import type { Admission, FailureGate, FailureGates } from './gates.js'
import { SharedAttempts } from './shared-gates.js'
import type { RateLimitOptions } from './types.js'

export type { FailureBudget, RateLimitOptions, UsernameFailureBudget } from './types.js'
export { Attempts, busy, kFailureGates } from './gates.js'
export type { FailureGate, FailureGates } from './gates.js'

const OPTION_KEYS = ['perCredential', 'failuresPerIp', 'failuresPerUser']
const BUDGET_KEYS = ['max', 'timeWindow']
const USER_BUDGET_KEYS = ['max', 'timeWindow', 'normalizeUsername']

/** What `rateLimit` means when the application does not give it and `basic` is configured. */
const DEFAULTS: RateLimitOptions = Object.freeze({})
/** The keyed limiter's fallback when only key records' own budgets are counted (never used as a budget). */
const NO_DEFAULT_BUDGET: Budget = Object.freeze({ max: Number.MAX_SAFE_INTEGER, timeWindow: 60_000 })

const defaultNormalizeUsername = (username: string): string => username.normalize('NFC').toLowerCase()
const NORMALIZE_USERNAME = 'rateLimit.failuresPerUser.normalizeUsername'

// Per-request inputs for @fastify/rate-limit's keyGenerator/max/timeWindow callbacks.
const kSubject = Symbol('multiauth.rateLimit.subject')
const kBudget = Symbol('multiauth.rateLimit.budget')
const kCounted = Symbol('multiauth.rateLimit.counted')
interface LimitedRequest extends FastifyRequest {
  [kSubject]: string | null
  [kBudget]: AuthSuccess['rateLimit'] | null
  [kCounted]: boolean
}

function checkBudget (value: unknown, path: string, keys: readonly string[], fallback: Budget): Budget {
  const raw = checkObject(value, path)
  checkKeys(raw, keys, path)
  const max = raw.max ?? fallback.max
  if (!Number.isSafeInteger(max) || (max as number) < 1) throw new MultiauthOptionError(`${path}.max must be a positive integer`)
  return { max: max as number, timeWindow: durationMs(raw.timeWindow, `${path}.timeWindow`) ?? fallback.timeWindow }
}

function setHeaders (reply: FastifyReply, result: LimitResult, remaining: number): void {
  // IETF draft "RateLimit header fields for HTTP" names, as @fastify/rate-limit's enableDraftSpec.
  reply.header('ratelimit-limit', result.max)
  reply.header('ratelimit-remaining', remaining)
  reply.header('ratelimit-reset', result.ttlInSeconds)
}

/** Every 429 the plugin answers: `budget` says which was spent (the `rate-limited` event; never the username or key). */
function tooMany (request: FastifyRequest, reply: FastifyReply, result: LimitResult, budget: RateLimitedEvent['budget']): Error {
  const seconds = Math.max(1, result.ttlInSeconds)
  setHeaders(reply, result, 0)
  reply.header('retry-after', seconds)
  const channel = events['rate-limited']
  if (channel.hasSubscribers) channel.publish({ ...requestFields(request), budget, retryAfter: seconds })
  return new TooManyRequestsError(String(seconds))
}

function userId (success: AuthSuccess): string | undefined {
  const id = (success.user as { id?: unknown }).id
  return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined
}

/**
 * What spends the per-IP budget: refused credentials (401 after credentials were presented)
 * and malformed ones (400). A request that presented nothing costs no verification and
 * guesses nothing; counting it would lock out honest clients doing the 401-challenge round
 * trip, or a monitor polling a guarded route.
 */
function isRefusal (err: unknown): boolean {
  const { statusCode, code } = (err ?? {}) as { statusCode?: number, code?: string }
  return statusCode === 400 || (statusCode === 401 && code !== 'FST_MULTIAUTH_CREDENTIALS_MISSING')
}

export interface LimitsContext {
  store: MultiauthStore
  /** The plugin's `callbackTimeout`: the longest wait for a failure-budget slot. */
  timeoutMs: number
  /** Whether `basic` is configured: the failure budgets are then on by default. */
  basic: boolean
  /** Whether API-key records (`apiKey.findKey`) may carry a per-key `rateLimit`, which is then counted. */
  keyRecords: boolean
}

/**
 * Validates `rateLimit`, registers @fastify/rate-limit where it counts (the per-credential
 * budget; the failure budgets with Redis), each in its own encapsulated scope (its
 * `createRateLimit()` uses the registration's settings), and returns the guard's limits, or
 * `undefined` when every limit is off.
 */
export async function createGuardLimits (app: FastifyInstance, raw: unknown, ctx: LimitsContext): Promise<GuardLimits | undefined> {
  if (raw === false) return undefined
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new MultiauthOptionError('rateLimit must be an object, or false to turn every limit off')
  }
  const options = (raw ?? DEFAULTS) as RateLimitOptions
  checkKeys(options as Record<string, unknown>, OPTION_KEYS, 'rateLimit')
  // The per-credential budget only when asked for (a quota, not a defence); a key record's own
  // `rateLimit` always counts, so it is never silently ignored.
  const perCredential = options.perCredential === undefined || options.perCredential === false
    ? undefined
    : checkBudget(options.perCredential, 'rateLimit.perCredential', BUDGET_KEYS, { max: 1000, timeWindow: 60_000 })
  const keyed = perCredential ?? (ctx.keyRecords ? NO_DEFAULT_BUDGET : undefined)
  // The failure budgets bound password guessing and argon2 work: on by default with Basic.
  const failuresOn = raw !== undefined || ctx.basic
  const perIp = !failuresOn || options.failuresPerIp === false ? undefined : checkBudget(options.failuresPerIp ?? {}, 'rateLimit.failuresPerIp', BUDGET_KEYS, { max: 20, timeWindow: 60_000 })
  const perUser = !failuresOn || options.failuresPerUser === false ? undefined : checkBudget(options.failuresPerUser ?? {}, 'rateLimit.failuresPerUser', USER_BUDGET_KEYS, { max: 10, timeWindow: 900_000 })
  const normalizeUsername = (options.failuresPerUser === false ? undefined : options.failuresPerUser?.normalizeUsername) ?? defaultNormalizeUsername
  checkFunction(normalizeUsername, 'rateLimit.failuresPerUser.normalizeUsername')
  if (keyed === undefined && perIp === undefined && perUser === undefined) return undefined

  // Counters live where the store lives: shared in Redis, or in this process.
  const redis = isRedisStore(ctx.store) ? ctx.store : undefined
  const call = redis === undefined
    ? async (limiter: Limiter, request: FastifyRequest, callOptions?: { increment: boolean }) => await limiter(request, callOptions)
    : async (limiter: Limiter, request: FastifyRequest, callOptions?: { increment: boolean }) => await redis.bounded(() => limiter(request, callOptions))

  async function register (namespace: string, settings: RateLimitPluginOptions): Promise<Limiter> {
    let limiter: Limiter | undefined
    await app.register(async function multiauthRateLimit (scope) {
      if (scope.hasDecorator('createRateLimit')) {
        throw new MultiauthOptionError('rateLimit: register fastify-multiauth before @fastify/rate-limit (or register @fastify/rate-limit inside an encapsulated plugin); its decorators would shadow the ones fastify-multiauth registers for itself')
      }
      await scope.register(fastifyRateLimit, {
        ...settings,
        global: false,
        skipOnError: false, // a store failure must refuse the request (fail closed), never skip the limit
        ...(redis === undefined ? { cache: LOCAL_CACHE } : { redis: redis.client, nameSpace: redis.prefix + namespace })
      })
      limiter = scope.createRateLimit() as unknown as Limiter
    })
    return limiter as Limiter
  }

  /**
   * A failure budget's gate: in this process, or shared by every instance through the RedisStore's
   * slots (exact across instances; @fastify/rate-limit has no way to give back the count of an
   * attempt that succeeded, which that needs).
   */
  function failureGate (budget: Budget, namespace: string): FailureGate {
    if (redis === undefined) return new Attempts(new LocalCounter(budget), ctx.timeoutMs)
    return new SharedAttempts(redis, namespace, budget, ctx.timeoutMs)
  }

  const keyedLimiter = keyed === undefined
    ? undefined
    : await register('rl:', {
      keyGenerator: (request: FastifyRequest) => (request as LimitedRequest)[kSubject] as string,
      max: (request: FastifyRequest) => (request as LimitedRequest)[kBudget]?.max ?? keyed.max,
      timeWindow: (request: FastifyRequest) => (request as LimitedRequest)[kBudget]?.timeWindow ?? keyed.timeWindow
    })
  const ipAttempts = perIp === undefined ? undefined : failureGate(perIp, 'rl:fail:ip:')
  const userAttempts = perUser === undefined ? undefined : failureGate(perUser, 'rl:fail:user:')

  app.decorateRequest(kSubject, null)
  app.decorateRequest(kBudget, null)
  app.decorateRequest(kCounted, false)
  app.decorate(kFailureGates, { ip: ipAttempts, user: userAttempts } satisfies FailureGates)

  /** The per-username counter's key: normalised (the application's function may throw: a 500), then hashed. */
  function userKey (username: string, request: FastifyRequest): string {
    let normal: unknown
    try {
      normal = normalizeUsername(username)
    } catch (err) {
      throw callbackError(err, NORMALIZE_USERNAME, request)
    }
    if (typeof normal !== 'string') throw callbackError(new TypeError('rateLimit.failuresPerUser.normalizeUsername must return a string'), NORMALIZE_USERNAME, request)
    // Hashed: counters must not put user names (or tokens, with allowToken) in Redis, and stay small in memory.
    return sha256Text(normal, 'base64url').slice(0, 22)
  }

  // --- per IP: around the whole guard ---

  function runForIp (ip: string, spent: Admission, run: GuardRun, request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
    if (spent !== undefined) {
      request.log.info({ reason: 'too many failed attempts from this IP' }, 'multiauth: rate limited')
      throw tooMany(request, reply, spent, 'failures-per-ip')
    }
    const attempts = ipAttempts as FailureGate
    let pending
    try {
      pending = run(request, reply)
    } catch (err) {
      return afterIpFailure(attempts, ip, err)
    }
    if (pending === undefined) {
      attempts.leave(ip, false)
      return undefined
    }
    return pending.then(() => { attempts.leave(ip, false) }, (err: unknown) => afterIpFailure(attempts, ip, err))
  }

  /** A refusal is counted against the IP (and, in Redis, written) before it is answered; then the error goes on. */
  function afterIpFailure (attempts: FailureGate, ip: string, err: unknown): Promise<never> {
    const counted = attempts.leave(ip, isRefusal(err))
    if (counted === undefined) throw err
    return counted.then(() => { throw err })
  }

  // --- per username: around Basic's verification ---

  function verifyForUser (key: string, spent: Admission, request: FastifyRequest, reply: FastifyReply, run: () => VerifyOutcome): VerifyOutcome {
    const attempts = userAttempts as FailureGate
    if (spent !== undefined) {
      request.log.info({ reason: 'too many failed attempts for this username' }, 'multiauth: rate limited')
      throw tooMany(request, reply, spent, 'failures-per-user')
    }
    let outcome
    try {
      outcome = run()
    } catch (err) {
      attempts.leave(key, false)
      throw err
    }
    if (!isThenable(outcome)) return afterUserOutcome(attempts, key, outcome)
    return Promise.resolve(outcome).then((value) => afterUserOutcome(attempts, key, value), (err: unknown) => {
      attempts.leave(key, false)
      throw err
    })
  }

  /** A refusal is counted against the username (and, in Redis, written) before it is answered. */
  function afterUserOutcome (attempts: FailureGate, key: string, outcome: AuthSuccess | AuthFailure): VerifyOutcome {
    const counted = attempts.leave(key, outcome instanceof AuthFailure)
    return counted === undefined ? outcome : counted.then(() => outcome)
  }

  return {
    guard (run: GuardRun, request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
      if (ipAttempts === undefined) return run(request, reply)
      const ip = normalizeIP(request.ip)
      const admission = ipAttempts.enter(ip, request, reply)
      if (!isThenable(admission)) return runForIp(ip, admission, run, request, reply)
      return admission.then((spent) => runForIp(ip, spent, run, request, reply))
    },

    verify (method: AuthMethod, credentials: unknown, request: FastifyRequest, reply: FastifyReply, run: () => VerifyOutcome): VerifyOutcome {
      if (userAttempts === undefined || method.name !== 'basic') return run()
      const key = userKey((credentials as { username: string }).username, request)
      const admission = userAttempts.enter(key, request, reply)
      if (!isThenable(admission)) return verifyForUser(key, admission, request, reply, run)
      return admission.then((spent) => verifyForUser(key, spent, request, reply, run))
    },

    admitted: keyedLimiter === undefined
      ? undefined
      : function admitted (success: AuthSuccess, request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
        const limited = request as LimitedRequest
        // Two guards on one request (a scope hook plus a route hook) count it once.
        if (limited[kCounted]) return undefined
        limited[kCounted] = true
        // Without a per-credential budget, only a key record's own rateLimit is counted; nothing to
        // count, no promise (the guard stays synchronous for a synchronous findKey).
        if (perCredential === undefined && success.rateLimit === undefined) return undefined
        const id = userId(success)
        // The IP fallback is normalised like the failure budget's (IPv4-mapped IPv6 as IPv4, IPv6 per /64).
        limited[kSubject] = success.keyId !== undefined ? `key:${success.keyId}` : id !== undefined ? `user:${id}` : `ip:${normalizeIP(request.ip)}`
        limited[kBudget] = success.rateLimit ?? null
        return countKeyed(keyedLimiter, success, request, reply)
      }
  }

  async function countKeyed (limiter: Limiter, success: AuthSuccess, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const result = await call(limiter, request)
    if (result.isExceeded) {
      request.log.info({ reason: 'rate limit of the credential exceeded', keyId: success.keyId }, 'multiauth: rate limited')
      throw tooMany(request, reply, result, 'per-credential')
    }
    setHeaders(reply, result, result.remaining)
  }
}
