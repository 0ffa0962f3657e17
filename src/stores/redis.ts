import type { Cluster, Redis, RedisOptions } from 'ioredis'
import { boundedStore } from '../core/callbacks.js'
import { durationMs } from '../core/durations.js'
import type { Duration } from '../core/durations.js'
import { loadPeers } from '../core/peer.js'
import type { MultiauthStore } from './types.js'

export interface RedisStoreOptions {
  /** Your ioredis client (the store never closes it), or connection options for one the store owns. */
  client?: Redis | Cluster
  connection?: RedisOptions | string
  /** Prefix of every key the store writes. Default `"multiauth:"`. */
  prefix?: string
  /** A command not answered within this time (ms or `'1s'`) fails the request with 503. Default one second. */
  commandTimeout?: Duration
  /**
   * Accept a server whose `maxmemory-policy` may evict keys (`allkeys-*`, `volatile-*`). Every key
   * the plugin writes has a TTL, so such a policy can silently drop a revocation, a "log out
   * everywhere" time or a session tombstone under memory pressure: registration refuses it unless
   * this is `true`. Default false; use `noeviction` (writes then fail, and requests fail closed).
   */
  allowEviction?: boolean
}

const kRedisStore = Symbol.for('fastify-multiauth.RedisStore')

/**
 * A RedisStore, from this build of the package or the other one (ESM and CommonJS each have
 * their own class, so `instanceof` would miss a store made by the other): recognised by a brand.
 */
export function isRedisStore (store: unknown): store is RedisStore {
  return (store as Record<symbol, unknown> | null | undefined)?.[kRedisStore] === true
}

/** A `maxmemory-policy` under which Redis may drop keys the plugin relies on. */
export function evicts (policy: string): boolean {
  return policy !== 'noeviction'
}

// INCR then set the TTL only on creation, atomically: a counter never lives forever,
// and later increments do not extend its window.
const INCREMENT = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`

// SET unless the key holds ARGV[3] (a tombstone): one key, so it is atomic and Cluster-safe.
const SET_UNLESS_EQUAL = `if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

// Compare-and-set on one key: atomic and Cluster-safe.
const COMPARE_AND_SET = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`

// A capped ordered set on one key (Cluster-safe: no other key is touched). The score is the
// highest score so far plus one, so the order is insertion order whatever the clocks of the
// instances; returns the members dropped.
const ADD_CAPPED = `local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local seq = (tonumber(top[2]) or 0) + 1
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if extra <= 0 then return {} end
local dropped = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
return dropped`

/** A TTL is a programming-time value: NaN or a negative number must not become a 503 ("store unavailable"). */
function ttl (ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`store TTL must be a positive number of ms (got ${ms})`)
  return Math.ceil(ms)
}

/**
 * Store on Redis (ioredis). Every command is bounded by `commandTimeout` and every
 * failure becomes `StoreUnavailableError` (503): requests fail closed while Redis is
 * down and succeed again as soon as ioredis reconnects, without a restart.
 */
export class RedisStore implements MultiauthStore {
  /** @internal The brand `isRedisStore` reads. */
  get [kRedisStore] (): true { return true }

  readonly client: Redis | Cluster
  readonly prefix: string
  /** Upper bound in ms for one command; also bounds the rate-limit counters on this client. */
  readonly commandTimeout: number
  /** See `RedisStoreOptions.allowEviction`. */
  readonly allowEviction: boolean
  readonly #owned: boolean
  readonly #timeout: number

  constructor (options: RedisStoreOptions) {
    if (options.client === undefined && options.connection === undefined) {
      throw new TypeError('RedisStore needs a client or connection options')
    }
    this.prefix = options.prefix ?? 'multiauth:'
    if (typeof this.prefix !== 'string') throw new TypeError('RedisStore prefix must be a string')
    this.#timeout = this.commandTimeout = durationMs(options.commandTimeout, 'RedisStore commandTimeout') ?? 1000
    if (options.allowEviction !== undefined && typeof options.allowEviction !== 'boolean') throw new TypeError('RedisStore allowEviction must be a boolean')
    this.allowEviction = options.allowEviction ?? false
    this.#owned = options.client === undefined
    // Commands issued while (re)connecting wait in ioredis' queue, bounded by our own
    // timeout; after one reconnection attempt ioredis fails them, so the queue stays small.
    const failFast: RedisOptions = { maxRetriesPerRequest: 1 }
    if (options.client !== undefined) {
      this.client = options.client
    } else {
      // ioredis is an optional peer dependency: loaded only here, for a client the store owns.
      const [{ Redis: RedisClient }] = loadPeers('RedisStore', ['ioredis'])
      this.client = typeof options.connection === 'string'
        ? new RedisClient(options.connection, failFast)
        : new RedisClient({ ...failFast, ...options.connection })
    }
    // ioredis emits 'error' on every failed reconnect; without a listener Node would crash.
    if (this.#owned) this.client.on('error', () => {})
    this.client.defineCommand('multiauthIncrement', { numberOfKeys: 1, lua: INCREMENT })
    this.client.defineCommand('multiauthSetUnlessEqual', { numberOfKeys: 1, lua: SET_UNLESS_EQUAL })
    this.client.defineCommand('multiauthCompareAndSet', { numberOfKeys: 1, lua: COMPARE_AND_SET })
    this.client.defineCommand('multiauthAddCapped', { numberOfKeys: 1, lua: ADD_CAPPED })
  }

  async get (key: string): Promise<string | null> {
    return await boundedStore(this.#timeout, this.client.get(this.prefix + key))
  }

  async getMany (keys: readonly string[]): Promise<Array<string | null>> {
    return await boundedStore(this.#timeout, this.client.mget(keys.map((key) => this.prefix + key)))
  }

  async set (key: string, value: string, ttlMs: number): Promise<void> {
    await boundedStore(this.#timeout, this.client.set(this.prefix + key, value, 'PX', ttl(ttlMs)))
  }

  async setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean> {
    const result = await boundedStore(this.#timeout, this.client.set(this.prefix + key, value, 'PX', ttl(ttlMs), 'NX'))
    return result === 'OK'
  }

  async setUnlessEqual (key: string, value: string, ttlMs: number, unless: string): Promise<boolean> {
    const client = this.client as Redis & { multiauthSetUnlessEqual: (key: string, value: string, ttl: number, unless: string) => Promise<number> }
    return (await boundedStore(this.#timeout, client.multiauthSetUnlessEqual(this.prefix + key, value, ttl(ttlMs), unless))) === 1
  }

  async compareAndSet (key: string, expected: string, value: string, ttlMs: number): Promise<boolean> {
    const client = this.client as Redis & { multiauthCompareAndSet: (key: string, expected: string, value: string, ttl: number) => Promise<number> }
    return (await boundedStore(this.#timeout, client.multiauthCompareAndSet(this.prefix + key, expected, value, ttl(ttlMs)))) === 1
  }

  async addCapped (key: string, member: string, max: number, ttlMs: number): Promise<string[]> {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`addCapped: max must be a positive integer (got ${max})`)
    const client = this.client as Redis & { multiauthAddCapped: (key: string, member: string, max: number, ttl: number) => Promise<string[]> }
    return await boundedStore(this.#timeout, client.multiauthAddCapped(this.prefix + key, member, max, ttl(ttlMs)))
  }

  async delete (key: string): Promise<void> {
    await boundedStore(this.#timeout, this.client.del(this.prefix + key))
  }

  async increment (key: string, ttlMs: number): Promise<number> {
    const client = this.client as Redis & { multiauthIncrement: (key: string, ttl: number) => Promise<number> }
    return await boundedStore(this.#timeout, client.multiauthIncrement(this.prefix + key, ttl(ttlMs)))
  }

  /**
   * The server's `maxmemory-policy` (CONFIG GET), or `undefined` when it cannot be read (CONFIG
   * disabled, as on some managed services, or the server unreachable): checked at registration.
   */
  async evictionPolicy (): Promise<string | undefined> {
    try {
      const reply = await boundedStore(this.#timeout, this.client.config('GET', 'maxmemory-policy') as Promise<unknown>)
      const policy = Array.isArray(reply) ? reply[1] : undefined
      return typeof policy === 'string' ? policy : undefined
    } catch {
      return undefined
    }
  }

  async close (): Promise<void> {
    if (this.#owned) this.client.disconnect()
  }
}
