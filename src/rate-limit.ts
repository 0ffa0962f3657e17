import fastifyRateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { RateLimitPluginOptions } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { MultiauthOptionError, TooManyRequestsError } from './errors.js'
import type { GuardLimits, GuardRun } from './guard.js'
import { sha256Text } from './hash.js'
import { bounded, RedisStore } from './stores/redis.js'
import type { MultiauthStore } from './stores/types.js'
import type { AuthMethod, AuthSuccess } from './types.js'
import { checkKeys, checkObject } from './validate.js'

/**
 * Rate limits, all counted by @fastify/rate-limit (its stores, windows and Redis script);
 * this file only decides *what* is counted and *when* relative to authentication.
 */
export interface RateLimitOptions {
  /** Requests per authenticated credential per window: the API key's id, else the user's `id`. Default 1000. A key record's `rateLimit` overrides it. */
  max?: number
  /** Window in ms. Default 60 000. */
  timeWindow?: number
  /**
   * Refused requests (401/400) per client IP (`request.ip`; IPv6 per /64) per window. Once spent,
   * requests from that IP get 429 before any credential is checked. `false` turns it off.
   * Default `{ max: 20, timeWindow: 60_000 }`.
   */
  failuresPerIp?: FailureBudget | false
  /**
   * Refused Basic credentials per username per window, from any IP; once spent that username
   * gets 429 before its password is checked. `false` turns it off. Default `{ max: 10, timeWindow: 900_000 }`.
   */
  failuresPerUser?: FailureBudget | false
}

export interface FailureBudget { max: number, timeWindow?: number }

interface Budget { max: number, timeWindow: number }

/** What `createRateLimit()` resolves to (the part we read). */
interface LimitResult { max: number, remaining: number, ttlInSeconds: number, isExceeded: boolean }
type Limiter = (request: FastifyRequest, callOptions?: { increment?: boolean }) => Promise<LimitResult>

const OPTION_KEYS = ['max', 'timeWindow', 'failuresPerIp', 'failuresPerUser']
const BUDGET_KEYS = ['max', 'timeWindow']
const PEEK = Object.freeze({ increment: false })
// In-process counters (no Redis): enough entries that spraying usernames cannot evict a victim's counter cheaply.
const LOCAL_CACHE = 50_000

// Per-request inputs for @fastify/rate-limit's keyGenerator/max/timeWindow callbacks.
const kSubject = Symbol('multiauth.rateLimit.subject')
const kBudget = Symbol('multiauth.rateLimit.budget')
const kCounted = Symbol('multiauth.rateLimit.counted')
const kAttempt = Symbol('multiauth.rateLimit.attempt')
interface LimitedRequest extends FastifyRequest {
  [kSubject]: string | null
  [kBudget]: AuthSuccess['rateLimit'] | null
  [kCounted]: boolean
  /** The per-username counter this request's Basic attempt holds a slot of, until it settles. */
  [kAttempt]: string | null
}

/** Rounds an attempt may wait for a slot before it is refused (each round waits for another attempt to finish). */
const MAX_WAIT_ROUNDS = 50

/**
 * Failed-attempt budgets are checked with a peek (a success must not spend them) and
 * counted after the refusal, so a peek cannot see attempts still being verified: without
 * this, N concurrent guesses would all pass a budget of M < N. An attempt starts only while
 * (attempts in flight) < (budget remaining); the others wait for one to finish and look
 * again, so guesses are bounded exactly per process and concurrent honest requests are
 * delayed, not refused. Across instances each may overshoot by its own attempts in flight.
 */
class Attempts {
  private readonly inFlight = new Map<string, { count: number, waiters: Array<() => void> }>()

  /** Resolves the counter's state; when `remaining > 0` the caller holds a slot and must call `end(key)`. */
  async begin (key: string, peek: () => Promise<LimitResult>): Promise<LimitResult> {
    for (let round = 0; ; round++) {
      const state = await peek()
      let entry = this.inFlight.get(key)
      if (state.remaining === 0) return state
      if (entry === undefined || entry.count < state.remaining) {
        if (entry === undefined) this.inFlight.set(key, entry = { count: 0, waiters: [] })
        entry.count++
        return state
      }
      if (round === MAX_WAIT_ROUNDS) return { ...state, remaining: 0 }
      await new Promise<void>((resolve) => { (entry as { waiters: Array<() => void> }).waiters.push(resolve) })
    }
  }

  end (key: string): void {
    const entry = this.inFlight.get(key)
    if (entry === undefined) return
    entry.count--
    const waiters = entry.waiters
    if (entry.count <= 0 && waiters.length === 0) this.inFlight.delete(key)
    else entry.waiters = []
    // Everyone waiting looks at the counter again; those that still do not fit wait for the next end.
    for (const wake of waiters) wake()
  }
}

function checkBudget (value: unknown, path: string, fallback: Budget): Budget {
  const raw = checkObject(value, path)
  checkKeys(raw, BUDGET_KEYS, path)
  const max = raw.max ?? fallback.max
  const timeWindow = raw.timeWindow ?? fallback.timeWindow
  if (!Number.isSafeInteger(max) || (max as number) < 1) throw new MultiauthOptionError(`${path}.max must be a positive integer`)
  if (!Number.isSafeInteger(timeWindow) || (timeWindow as number) < 1) throw new MultiauthOptionError(`${path}.timeWindow must be a positive integer (ms)`)
  return { max: max as number, timeWindow: timeWindow as number }
}

function setHeaders (reply: FastifyReply, result: LimitResult, remaining: number): void {
  // IETF draft "RateLimit header fields for HTTP" names, as @fastify/rate-limit's enableDraftSpec.
  reply.header('ratelimit-limit', result.max)
  reply.header('ratelimit-remaining', remaining)
  reply.header('ratelimit-reset', result.ttlInSeconds)
}

function tooMany (reply: FastifyReply, result: LimitResult): Error {
  const seconds = Math.max(1, result.ttlInSeconds)
  setHeaders(reply, result, 0)
  reply.header('retry-after', seconds)
  return new TooManyRequestsError(String(seconds))
}

function userId (success: AuthSuccess): string | undefined {
  const id = (success.user as { id?: unknown }).id
  return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined
}

/**
 * Registers @fastify/rate-limit once per budget, each in its own encapsulated scope (its
 * `createRateLimit()` uses the registration's settings), and returns the guard's limits.
 */
export async function createGuardLimits (app: FastifyInstance, raw: unknown, store: MultiauthStore): Promise<GuardLimits> {
  const options = checkObject(raw, 'rateLimit') as RateLimitOptions
  checkKeys(options as Record<string, unknown>, OPTION_KEYS, 'rateLimit')
  const keyed = checkBudget({ max: options.max, timeWindow: options.timeWindow }, 'rateLimit', { max: 1000, timeWindow: 60_000 })
  const perIp = options.failuresPerIp === false ? undefined : checkBudget(options.failuresPerIp ?? {}, 'rateLimit.failuresPerIp', { max: 20, timeWindow: 60_000 })
  const perUser = options.failuresPerUser === false ? undefined : checkBudget(options.failuresPerUser ?? {}, 'rateLimit.failuresPerUser', { max: 10, timeWindow: 900_000 })

  // Counters live where the store lives: shared in Redis, or in this process.
  const redis = store instanceof RedisStore ? store : undefined
  const call = redis === undefined
    ? async (limiter: Limiter, request: FastifyRequest, callOptions?: { increment: boolean }) => await limiter(request, callOptions)
    : async (limiter: Limiter, request: FastifyRequest, callOptions?: { increment: boolean }) => await bounded(redis.commandTimeout, limiter(request, callOptions))

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

  const subject = (request: FastifyRequest): string => (request as LimitedRequest)[kSubject] as string
  const keyedLimiter = await register('rl:', {
    keyGenerator: subject,
    max: (request: FastifyRequest) => (request as LimitedRequest)[kBudget]?.max ?? keyed.max,
    timeWindow: (request: FastifyRequest) => (request as LimitedRequest)[kBudget]?.timeWindow ?? keyed.timeWindow
  })
  // The default keyGenerator: request.ip, IPv6 grouped per /64.
  const ipLimiter = perIp === undefined ? undefined : await register('rl:fail:ip:', { ...perIp })
  const userLimiter = perUser === undefined ? undefined : await register('rl:fail:user:', { ...perUser, keyGenerator: subject })

  app.decorateRequest(kSubject, null)
  app.decorateRequest(kBudget, null)
  app.decorateRequest(kCounted, false)

  app.decorateRequest(kAttempt, null)
  const ipAttempts = new Attempts()
  const userAttempts = new Attempts()

  return {
    async guard (run: GuardRun, request: FastifyRequest, reply: FastifyReply): Promise<void> {
      if (ipLimiter === undefined) return await run(request, reply)
      const ip = normalizeIP(request.ip)
      const state = await ipAttempts.begin(ip, async () => await call(ipLimiter, request, PEEK))
      if (state.remaining === 0) {
        request.log.info({ reason: 'too many failed attempts from this IP' }, 'multiauth: rate limited')
        throw tooMany(reply, state)
      }
      try {
        await run(request, reply)
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode
        if (status === 401 || status === 400) await call(ipLimiter, request)
        throw err
      } finally {
        ipAttempts.end(ip)
      }
    },

    async beforeVerify (method: AuthMethod, credentials: unknown, request: FastifyRequest, reply: FastifyReply): Promise<void> {
      if (userLimiter === undefined || method.name !== 'basic') return
      // The username is hashed: counters must not put user names (or tokens, with allowToken) in Redis.
      const username = (credentials as { username: string }).username
      const hashed = sha256Text(username, 'base64url').slice(0, 22)
      ;(request as LimitedRequest)[kSubject] = hashed
      const state = await userAttempts.begin(hashed, async () => await call(userLimiter, request, PEEK))
      if (state.remaining === 0) {
        request.log.info({ reason: 'too many failed attempts for this username' }, 'multiauth: rate limited')
        throw tooMany(reply, state)
      }
      ;(request as LimitedRequest)[kAttempt] = hashed
    },

    async refused (method: AuthMethod, _credentials: unknown, request: FastifyRequest): Promise<void> {
      // kSubject still holds the hashed username set by beforeVerify.
      if (userLimiter !== undefined && method.name === 'basic') await call(userLimiter, request)
    },

    settled (request: FastifyRequest): void {
      const limited = request as LimitedRequest
      if (limited[kAttempt] === null) return
      userAttempts.end(limited[kAttempt])
      limited[kAttempt] = null
    },

    async admitted (success: AuthSuccess, request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const limited = request as LimitedRequest
      // Two guards on one request (a scope hook plus a route hook) count it once.
      if (limited[kCounted]) return
      limited[kCounted] = true
      const id = userId(success)
      limited[kSubject] = success.keyId !== undefined ? `key:${success.keyId}` : id !== undefined ? `user:${id}` : `ip:${request.ip}`
      limited[kBudget] = success.rateLimit ?? null
      const result = await call(keyedLimiter, request)
      if (result.isExceeded) {
        request.log.info({ reason: 'rate limit of the credential exceeded', keyId: success.keyId }, 'multiauth: rate limited')
        throw tooMany(reply, result)
      }
      setHeaders(reply, result, result.remaining)
    }
  }
}
