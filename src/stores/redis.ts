import type { ChainableCommander, Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import { boundedStore } from '../core/callbacks.js'
import { durationMs } from '../core/durations.js'
import type { Duration } from '../core/durations.js'
import { MultiauthOptionError } from '../core/errors.js'
import { StoreHealth } from './health.js'
import { loadPeers } from '../core/peer.js'
import type { MultiauthStore, WriteOptions } from './types.js'
import { defineScripts } from './redis-scripts.js'
import { ReadyGate } from './redis-ready.js'
import type { Command } from './redis-ready.js'
import type { PipelineScripts, Reservation, Scripts } from './redis-scripts.js'

export type { Reservation } from './redis-scripts.js'

/** Where the store's Redis is: exactly one of `client`, `connection` and `cluster`. */
export type RedisStoreConnection =
  | {
    /**
     * Your ioredis client: a `Redis` (standalone, or Sentinel through its `sentinels` option) or a
     * `Cluster`. The store never closes a client it is given. It must read from primaries: a client
     * that reads from replicas (`scaleReads` other than `'master'`, `role: 'slave'`) is refused, since
     * a replica may not have a revocation yet.
     */
    client: Redis | Cluster
    connection?: never
    cluster?: never
  }
  | {
    /** Connection options (or a `redis://` URL) for a standalone or Sentinel client the store owns. */
    connection: RedisOptions | string
    client?: never
    cluster?: never
  }
  | {
    /** Seed nodes (and options) for a Redis Cluster client the store owns. */
    cluster: { nodes: ClusterNode[], options?: ClusterOptions }
    client?: never
    connection?: never
  }

export type RedisStoreOptions = RedisStoreConnection & RedisStoreSettings

export interface RedisStoreSettings {
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
  /**
   * Security-relevant writes (an access-token revocation, "log out everywhere", a refresh-family
   * revocation, a refresh-token rotation, a session destroy, a counted failed attempt) wait until
   * this many replicas have acknowledged them (Redis `WAIT`), at most `timeout` (default one
   * second); fewer acknowledgements fail the request with 503, so its client retries instead of
   * trusting a write a failover could lose. Needs that many replicas per primary.
   * Off by default: without it, a failover loses what the primary had not yet replicated (docs/stores.md).
   */
  waitForReplicas?: { replicas: number, timeout?: Duration }
}

/** How a store's client reaches Redis: what the plugin checks at registration. */
type Client = Redis | Cluster

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

function isCluster (client: Client): client is Cluster {
  return (client as { isCluster?: unknown }).isCluster === true
}

/**
 * Refuses reading from replicas: replication is asynchronous, so a replica may not have a
 * revocation, a "log out everywhere" or a session tombstone yet, and would let it pass. Checked
 * on the options, before a client the store would own is created (and connects).
 */
function checkReadsFromPrimary (options: { scaleReads?: unknown } | { role?: unknown, readOnly?: unknown }, kind: 'Cluster' | 'Redis'): void {
  if (kind === 'Cluster') {
    const scaleReads = (options as { scaleReads?: unknown }).scaleReads ?? 'master'
    if (scaleReads !== 'master') throw new MultiauthOptionError(`RedisStore: the Cluster client reads from replicas (scaleReads: ${typeof scaleReads === 'function' ? 'a function' : JSON.stringify(scaleReads)}); a replica may not have a revocation yet. Use scaleReads: 'master'`)
    return
  }
  const { role, readOnly } = options as { role?: unknown, readOnly?: unknown }
  if (role === 'slave' || readOnly === true) throw new MultiauthOptionError('RedisStore: the client reads from a replica (role: \'slave\' or readOnly); a replica may not have a revocation yet, and refuses writes. Use the primary')
}

/** An ioredis client, as far as the store can tell without using it. */
function isClient (value: unknown): value is Client {
  return typeof value === 'object' && value !== null && typeof (value as Client).defineCommand === 'function' &&
    typeof (value as { options?: unknown }).options === 'object'
}

/** A TTL is a programming-time value: NaN or a negative number must not become a 503 ("store unavailable"). */
function ttl (ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`store TTL must be a positive number of ms (got ${ms})`)
  return Math.ceil(ms)
}

/**
 * Store on Redis (ioredis): standalone, Sentinel or Cluster. Every command is bounded by
 * `commandTimeout` and every failure becomes `StoreUnavailableError` (503): requests fail closed
 * while Redis is down or failing over, and succeed again as soon as ioredis reconnects (to the new
 * primary), without a restart. Every command touches one key, or keys of one hash slot, so it
 * runs unchanged on a Cluster.
 */
export class RedisStore implements MultiauthStore {
  /** @internal The brand `isRedisStore` reads. */
  get [kRedisStore] (): true { return true }

  readonly client: Client
  readonly prefix: string
  /** Upper bound in ms for one command; also bounds the rate-limit counters on this client. */
  readonly commandTimeout: number
  /** See `RedisStoreOptions.allowEviction`. */
  readonly allowEviction: boolean
  /** See `RedisStoreOptions.waitForReplicas` (the timeout in ms), or `undefined`. */
  readonly waitForReplicas: { replicas: number, timeout: number } | undefined
  /** @internal Whether Redis answers (`store:unavailable`, `store:recovered`); the rate-limit counters on this client report to it too. */
  readonly health = new StoreHealth('RedisStore')
  readonly #owned: boolean
  readonly #timeout: number
  readonly #scripts: Scripts
  readonly #gate: ReadyGate

  constructor (options: RedisStoreOptions) {
    const sources = ['client', 'connection', 'cluster'].filter((name) => options[name as keyof RedisStoreOptions] !== undefined)
    if (sources.length !== 1) {
      throw new MultiauthOptionError(sources.length === 0 ? 'RedisStore needs a client, connection options or cluster nodes' : `RedisStore takes one of client, connection and cluster (got ${sources.join(' and ')})`)
    }
    this.prefix = options.prefix ?? 'multiauth:'
    if (typeof this.prefix !== 'string') throw new MultiauthOptionError('RedisStore prefix must be a string')
    this.#timeout = this.commandTimeout = durationMs(options.commandTimeout, 'RedisStore commandTimeout') ?? 1000
    if (options.allowEviction !== undefined && typeof options.allowEviction !== 'boolean') throw new MultiauthOptionError('RedisStore allowEviction must be a boolean')
    this.allowEviction = options.allowEviction ?? false
    this.waitForReplicas = replicasOption(options.waitForReplicas)
    this.#owned = options.client === undefined
    // Commands issued while (re)connecting wait in ioredis' queue, bounded by our own
    // timeout; after one reconnection attempt ioredis fails them, so the queue stays small.
    const failFast: RedisOptions = {
      maxRetriesPerRequest: 1,
      // Commands of concurrent requests issued in one event-loop tick leave in one write (and on a
      // Cluster, one per node): fewer syscalls and packets under load, the same replies.
      enableAutoPipelining: true,
      // After a Sentinel failover the old primary may come back as a replica and answer writes with
      // READONLY: reconnect, which asks the Sentinels for the current primary.
      reconnectOnError: (err) => err.message.startsWith('READONLY')
    }
    if (options.client !== undefined) {
      const { client } = options as { client: unknown }
      if (!isClient(client)) throw new MultiauthOptionError('RedisStore client must be an ioredis Redis or Cluster (for a URL or connection options, use connection)')
      checkReadsFromPrimary(client.options, isCluster(client) ? 'Cluster' : 'Redis')
      this.client = client
    } else if (options.cluster !== undefined) {
      const cluster = options.cluster as unknown
      if (typeof cluster !== 'object' || cluster === null) throw new MultiauthOptionError('RedisStore cluster must be { nodes, options? }')
      const { nodes, options: clusterOptions = {} } = cluster as { nodes: unknown, options?: ClusterOptions }
      if (!Array.isArray(nodes) || nodes.length === 0) throw new MultiauthOptionError('RedisStore cluster.nodes must be a non-empty array of seed nodes')
      if (typeof clusterOptions !== 'object' || clusterOptions === null) throw new MultiauthOptionError('RedisStore cluster.options must be an object')
      checkReadsFromPrimary(clusterOptions, 'Cluster')
      const [{ Cluster: ClusterClient }] = loadPeers('RedisStore', ['ioredis'])
      // No offline queue: a command the Cluster retries (a connection closed under it) while no
      // master is reachable is refused instead of being held until the cluster answers again, long
      // after its request got 503 (new commands wait in the ReadyGate, bounded, instead).
      this.client = new ClusterClient(nodes, { enableAutoPipelining: true, enableOfflineQueue: false, ...clusterOptions, redisOptions: { ...failFast, ...clusterOptions.redisOptions } })
    } else {
      const connection = options.connection as unknown
      if (typeof connection !== 'string' && (typeof connection !== 'object' || connection === null || Array.isArray(connection))) {
        throw new MultiauthOptionError('RedisStore connection must be a redis:// URL or ioredis connection options')
      }
      if (typeof connection === 'object') checkReadsFromPrimary(connection as RedisOptions, 'Redis')
      // ioredis is an optional peer dependency: loaded only here, for a client the store owns.
      const [{ Redis: RedisClient }] = loadPeers('RedisStore', ['ioredis'])
      this.client = typeof connection === 'string'
        ? new RedisClient(connection, failFast)
        : new RedisClient({ ...failFast, ...connection as RedisOptions })
    }
    // ioredis emits 'error' on every failed reconnect; without a listener Node would crash.
    if (this.#owned) this.client.on('error', () => {})
    this.#scripts = defineScripts(this.client)
    this.#gate = new ReadyGate(this.client)
  }

  /**
   * @internal One command (or pipeline) bounded by `ms`: sent only while the client is connected
   * (see ReadyGate), a failure or timeout a 503 reported to `health`. The rate limiter on this
   * client sends its commands through it too.
   */
  bounded<T> (command: Command<T>, ms: number = this.#timeout): Promise<T> {
    return boundedStore(ms, this.#gate.send(ms, command), this.health)
  }

  /**
   * A write; with `durable` and `waitForReplicas`, pipelined with `WAIT` on the same connection (on
   * a Cluster, the connection to the key's primary), and refused unless enough replicas acknowledged.
   */
  async #write<T> (durable: boolean | undefined, direct: () => Promise<T>, pipelined: (pipeline: ChainableCommander & PipelineScripts) => ChainableCommander): Promise<T> {
    const wait = durable === true ? this.waitForReplicas : undefined
    if (wait === undefined) return await this.bounded(direct)
    const pipeline = pipelined(this.client.pipeline() as ChainableCommander & PipelineScripts).wait(wait.replicas, wait.timeout)
    const replies = await this.bounded(async () => {
      const results = await pipeline.exec()
      if (results === null) throw new Error('the pipeline was discarded')
      for (const [err] of results) if (err !== null) throw err
      const acknowledged = results[results.length - 1]?.[1]
      if (typeof acknowledged !== 'number' || acknowledged < wait.replicas) {
        throw new Error(`WAIT: ${String(acknowledged)} of ${wait.replicas} replicas acknowledged the write within ${wait.timeout} ms`)
      }
      return results
    }, this.#timeout + wait.timeout)
    return replies[0]?.[1] as T
  }

  async get (key: string): Promise<string | null> {
    return await this.bounded(() => this.client.get(this.prefix + key))
  }

  /** Keys of one hash slot on a Cluster (the plugin tags the keys it reads together). */
  async getMany (keys: readonly string[]): Promise<Array<string | null>> {
    return await this.bounded(() => this.client.mget(keys.map((key) => this.prefix + key)))
  }

  async set (key: string, value: string, ttlMs: number, options?: WriteOptions): Promise<void> {
    const k = this.prefix + key
    const px = ttl(ttlMs)
    await this.#write(options?.durable, async () => await this.client.set(k, value, 'PX', px), (p) => p.set(k, value, 'PX', px))
  }

  async setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean> {
    const k = this.prefix + key
    const px = ttl(ttlMs)
    const result = await this.bounded(() => this.client.set(k, value, 'PX', px, 'NX'))
    return result === 'OK'
  }

  async setUnlessEqual (key: string, value: string, ttlMs: number, unless: string, options?: WriteOptions): Promise<boolean> {
    const k = this.prefix + key
    const px = ttl(ttlMs)
    return (await this.#write(options?.durable, async () => await this.#scripts.multiauthSetUnlessEqual(k, value, px, unless), (p) => p.multiauthSetUnlessEqual(k, value, px, unless))) === 1
  }

  async compareAndSet (key: string, expected: string, value: string, ttlMs: number, options?: WriteOptions): Promise<boolean> {
    const k = this.prefix + key
    const px = ttl(ttlMs)
    return (await this.#write(options?.durable, async () => await this.#scripts.multiauthCompareAndSet(k, expected, value, px), (p) => p.multiauthCompareAndSet(k, expected, value, px))) === 1
  }

  async addCapped (key: string, member: string, max: number, ttlMs: number): Promise<string[]> {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`addCapped: max must be a positive integer (got ${max})`)
    const k = this.prefix + key
    const px = ttl(ttlMs)
    return await this.bounded(() => this.#scripts.multiauthAddCapped(k, member, max, px))
  }

  async delete (key: string, options?: WriteOptions): Promise<void> {
    const k = this.prefix + key
    await this.#write(options?.durable, async () => await this.client.del(k), (p) => p.del(k))
  }

  /** One script on one key: atomic, and Cluster-safe without a hash tag. Not `durable`: a count lost in a failover is no security state. */
  async recordUsage (key: string, count: number, atMs: number, ttlMs: number): Promise<void> {
    const k = this.prefix + key
    const px = ttl(ttlMs)
    await this.bounded(() => this.#scripts.multiauthRecordUsage(k, count, atMs, px))
  }

  async increment (key: string, ttlMs: number): Promise<number> {
    const k = this.prefix + key
    const px = ttl(ttlMs)
    return await this.bounded(() => this.#scripts.multiauthIncrement(k, px))
  }

  /**
   * @internal A failure budget's slot, shared by every instance: taken while the counter's
   * refusals plus attempts in flight are below `max`, atomically. The failure budgets use it (and
   * `settle`) so that N instances together run at most the budget.
   */
  async reserve (key: string, max: number, windowMs: number): Promise<Reservation> {
    const k = this.prefix + key
    const px = ttl(windowMs)
    const [taken, refusals, inFlight, ttlMs] = await this.bounded(() => this.#scripts.multiauthReserve(k, max, px))
    return { taken: taken === 1, refusals, inFlight, ttlMs: Math.max(0, ttlMs) }
  }

  /**
   * @internal Ends an attempt that `reserve` admitted: gives its slot back and, when `refused`,
   * counts the refusal (durably with `waitForReplicas`: a failover cannot give the attacker the
   * attempt back).
   */
  async settle (key: string, refused: boolean, windowMs: number): Promise<void> {
    const k = this.prefix + key
    const flag = refused ? '1' : '0'
    const window = ttl(windowMs)
    await this.#write(refused, async () => await this.#scripts.multiauthSettle(k, flag, window), (p) => p.multiauthSettle(k, flag, window))
  }

  /**
   * The server's `maxmemory-policy` (CONFIG GET) — on a Cluster, the first evicting policy among
   * its primaries — or `undefined` when it cannot be read (CONFIG disabled, as on some managed
   * services, or the server unreachable): checked at registration.
   */
  async evictionPolicy (): Promise<string | undefined> {
    try {
      const { client } = this
      if (!isCluster(client)) return await policyOf(client, this.#timeout)
      // The primaries are known once the client has its slot map: any command waits for it.
      await boundedStore(this.#timeout, this.#gate.send(this.#timeout, async () => await client.ping()), undefined)
      const masters = client.nodes('master')
      if (masters.length === 0) return undefined
      const policies = await Promise.all(masters.map(async (node) => await policyOf(node, this.#timeout)))
      if (policies.includes(undefined)) return undefined
      return policies.find((policy) => evicts(policy as string)) ?? policies[0]
    } catch {
      return undefined
    }
  }

  /**
   * The fewest replicas connected to a primary (INFO replication; on a Cluster, over every
   * primary), or `undefined` when it cannot be read: checked at registration against `waitForReplicas`.
   */
  async connectedReplicas (): Promise<number | undefined> {
    try {
      const { client } = this
      const nodes = isCluster(client) ? (await boundedStore(this.#timeout, this.#gate.send(this.#timeout, async () => await client.ping()), undefined), client.nodes('master')) : [client]
      if (nodes.length === 0) return undefined
      const counts = await Promise.all(nodes.map(async (node) => {
        const info = await boundedStore(this.#timeout, node.info('replication'), undefined)
        const match = /^connected_slaves:(\d+)/m.exec(info)
        return match === null ? undefined : Number(match[1])
      }))
      return counts.includes(undefined) ? undefined : Math.min(...(counts as number[]))
    } catch {
      return undefined
    }
  }

  async close (): Promise<void> {
    this.#gate.close()
    if (this.#owned) this.client.disconnect()
  }
}

async function policyOf (client: Redis, timeoutMs: number): Promise<string | undefined> {
  const reply = await boundedStore(timeoutMs, client.config('GET', 'maxmemory-policy') as Promise<unknown>, undefined)
  const policy = Array.isArray(reply) ? reply[1] : undefined
  return typeof policy === 'string' ? policy : undefined
}

function replicasOption (value: RedisStoreOptions['waitForReplicas']): { replicas: number, timeout: number } | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null) throw new MultiauthOptionError('RedisStore waitForReplicas must be an object { replicas, timeout? }')
  for (const key of Object.keys(value)) {
    if (key !== 'replicas' && key !== 'timeout') throw new MultiauthOptionError(`unknown option RedisStore waitForReplicas.${key} (allowed: replicas, timeout)`)
  }
  if (!Number.isSafeInteger(value.replicas) || value.replicas < 1) throw new MultiauthOptionError('RedisStore waitForReplicas.replicas must be a positive integer')
  const timeout = durationMs(value.timeout, 'RedisStore waitForReplicas.timeout') ?? 1000
  // WAIT 0 would wait forever: a bound is what keeps a lost replica from holding every revocation.
  if (timeout < 1) throw new MultiauthOptionError('RedisStore waitForReplicas.timeout must be at least 1 ms')
  return { replicas: value.replicas, timeout }
}
