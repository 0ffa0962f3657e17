import type { FastifyBaseLogger } from 'fastify'
import { callAsync } from '../../core/callbacks.js'
import { durationMs } from '../../core/durations.js'
import type { Duration } from '../../core/durations.js'
import { MultiauthOptionError } from '../../core/errors.js'
import type { Awaitable } from '../../core/types.js'
import { checkFunction, checkKeys, checkObject, checkPositiveInteger } from '../../core/validate.js'
import type { MultiauthStore } from '../../stores/types.js'
import { addUsage, parseUsage } from '../../stores/usage-record.js'
import { apiKeyId, parseApiKey } from './key-format.js'

// API-key usage (`apiKey.usage`): requests of keys made by `generateApiKey` counted in memory per
// key id, and written at most once per key per interval (per instance) to the store and to
// `onUsed`. A write never holds or fails the request: it is started, not awaited, and a failure is
// logged. `readApiKeyUsage` reads the totals back.

/** What `apiKey.usage.onUsed` receives: requests of one key since the last write, and the latest one's time. */
export interface ApiKeyUsage {
  /** The key's id (`apiKeyId(key)`), never the key. */
  keyId: string
  /** Requests since the previous write of this key's usage by this instance. */
  count: number
  /** When the latest of them came (the `apiKey.now` clock). */
  lastUsedAt: Date
}

/** `apiKey.usage` as an object (`true` takes every default). */
export interface ApiKeyUsageOptions {
  /**
   * A key's usage is written at most once per this interval per instance (ms or `'1m'`): at its
   * first request, then at its first request after the interval has passed, and when the
   * application closes. Default one minute; at least one second.
   */
  interval?: Duration
  /** Called with each write (the count since the previous one); bounded by `callbackTimeout`, a failure is logged. */
  onUsed?: (usage: ApiKeyUsage) => Awaitable<void>
  /** How long the store keeps a key's usage after its last write (ms or `'90d'`). Default 365 days. */
  retention?: Duration
  /**
   * Keys counted in memory at once. Beyond it, the key written longest ago is written early (if it
   * has requests to write) and forgotten, so memory stays bounded whatever the number of keys.
   * Default 10,000.
   */
  maxKeys?: number
}

/** `readApiKeyUsage`'s answer: every instance's writes added up. */
export interface ApiKeyUsageTotals {
  count: number
  lastUsedAt: Date
}

const USAGE_KEYS = ['interval', 'onUsed', 'retention', 'maxKeys']
const DEFAULT_INTERVAL = 60_000
const DEFAULT_RETENTION = 365 * 24 * 3_600_000
const DEFAULT_MAX_KEYS = 10_000
const KEY_ID = /^[0-9a-f]{24}$/

/** Where a key's usage lives in the store (under RedisStore's prefix). One key: atomic and Cluster-safe without a hash tag. */
export function usageKey (keyId: string): string {
  return `usage:${keyId}`
}

export interface PreparedUsage {
  interval: number
  retention: number
  maxKeys: number
  onUsed: ApiKeyUsageOptions['onUsed']
  /** The application's store, when it passed one; otherwise usage goes to `onUsed` only. */
  store: MultiauthStore | undefined
}

/** Checks `apiKey.usage` at registration. */
export function prepareUsage (raw: unknown, context: { findKey: boolean, store: MultiauthStore, applicationStore: boolean }): PreparedUsage | undefined {
  if (raw === undefined || raw === false) return undefined
  if (!context.findKey) throw new MultiauthOptionError('apiKey.usage needs apiKey.findKey: usage is counted per key id, which keys made by generateApiKey have')
  const options = raw === true ? {} : checkObject(raw, 'apiKey.usage') as ApiKeyUsageOptions
  checkKeys(options as Record<string, unknown>, USAGE_KEYS, 'apiKey.usage')
  checkFunction(options.onUsed, 'apiKey.usage.onUsed', false)
  checkPositiveInteger(options.maxKeys, 'apiKey.usage.maxKeys')
  const interval = durationMs(options.interval, 'apiKey.usage.interval', { min: 1000 }) ?? DEFAULT_INTERVAL
  const retention = durationMs(options.retention, 'apiKey.usage.retention', { min: interval }) ?? Math.max(DEFAULT_RETENTION, interval)
  const store = context.applicationStore ? context.store : undefined
  if (store === undefined && options.onUsed === undefined) {
    // The plugin's own in-memory store is private: counting into it would be work nobody can read.
    throw new MultiauthOptionError('apiKey.usage is written to the store option or handed to apiKey.usage.onUsed: pass store (a MemoryStore or RedisStore you can read with readApiKeyUsage) or onUsed')
  }
  return { interval, retention, maxKeys: options.maxKeys ?? DEFAULT_MAX_KEYS, onUsed: options.onUsed, store }
}

interface Counted {
  /** Requests not written yet. */
  count: number
  /** The latest request's time, ms. */
  lastUsedAt: number
  /** When this key's usage was last written, ms. */
  writtenAt: number
}

/**
 * The in-memory side: a bounded map of key id → requests not yet written. No timer: a key's count
 * is written by the first request after its interval, by eviction, or on close. The map is kept
 * in the order of the last write (an entry is re-inserted when written), so its first entry is
 * always the one written longest ago, the one to evict.
 */
export class UsageCounter {
  readonly #entries = new Map<string, Counted>()
  readonly #pending = new Set<Promise<void>>()
  #closed = false

  constructor (
    readonly interval: number,
    readonly maxKeys: number,
    /** Writes one key's usage; must not reject (failures are its to log). */
    readonly write: (keyId: string, count: number, lastUsedAt: number) => Promise<void>
  ) {}

  /** Keys counted in memory now (at most `maxKeys`). */
  get size (): number {
    return this.#entries.size
  }

  /** One request of `keyId` at `at` (ms). Synchronous and never throws: the write is started, not awaited. */
  count (keyId: string, at: number): void {
    const entry = this.#entries.get(keyId)
    if (entry === undefined) {
      // A key's first request is written at once, so a key in use shows up without waiting an interval.
      if (!this.#closed) {
        if (this.#entries.size >= this.maxKeys) this.#evictOldest()
        this.#entries.set(keyId, { count: 0, lastUsedAt: at, writtenAt: at })
      }
      this.#start(keyId, 1, at)
      return
    }
    entry.count++
    if (at > entry.lastUsedAt) entry.lastUsedAt = at
    if (at - entry.writtenAt < this.interval) return
    this.#start(keyId, entry.count, entry.lastUsedAt)
    entry.count = 0
    entry.writtenAt = at
    this.#entries.delete(keyId)
    this.#entries.set(keyId, entry)
  }

  /** Writes what is counted and waits for every write under way (the application's close). */
  async close (): Promise<void> {
    this.#closed = true
    for (const [keyId, entry] of this.#entries) {
      if (entry.count > 0) this.#start(keyId, entry.count, entry.lastUsedAt)
    }
    this.#entries.clear()
    await Promise.all(this.#pending)
  }

  #evictOldest (): void {
    const oldest = this.#entries.entries().next()
    if (oldest.done === true) return
    const [keyId, entry] = oldest.value
    this.#entries.delete(keyId)
    // Early, but nothing counted is lost.
    if (entry.count > 0) this.#start(keyId, entry.count, entry.lastUsedAt)
  }

  #start (keyId: string, count: number, lastUsedAt: number): void {
    const pending = this.write(keyId, count, lastUsedAt).finally(() => { this.#pending.delete(pending) })
    this.#pending.add(pending)
  }
}

/** Adds to a key's stored usage: atomically with `recordUsage`, else read then write. */
async function recordInStore (store: MultiauthStore, keyId: string, count: number, atMs: number, ttlMs: number): Promise<void> {
  const key = usageKey(keyId)
  if (store.recordUsage !== undefined) return await store.recordUsage(key, count, atMs, ttlMs)
  await store.set(key, addUsage(await store.get(key), count, atMs), ttlMs)
}

/** The counter for `apiKey.usage`, writing to the store and `onUsed`; `log` is the application's logger once set up. */
export function createUsageCounter (usage: PreparedUsage, timeoutMs: number, log: () => FastifyBaseLogger | undefined): UsageCounter {
  const { store, onUsed, retention } = usage
  async function write (keyId: string, count: number, lastUsedAt: number): Promise<void> {
    const writes: Array<Promise<void>> = []
    if (store !== undefined) {
      writes.push(recordInStore(store, keyId, count, lastUsedAt, retention).catch((err: unknown) => {
        log()?.warn({ err, keyId }, 'multiauth: API-key usage not written to the store')
      }))
    }
    if (onUsed !== undefined) {
      writes.push(callAsync(timeoutMs, 'apiKey.usage.onUsed', undefined, onUsed, { keyId, count, lastUsedAt: new Date(lastUsedAt) }).then(() => {}, (err: unknown) => {
        log()?.warn({ err, keyId }, 'multiauth: apiKey.usage.onUsed failed')
      }))
    }
    await Promise.all(writes)
  }
  return new UsageCounter(usage.interval, usage.maxKeys, write)
}

/**
 * A key's usage as the store has it: every instance's writes added up, or `null` when nothing was
 * written (never used, or not within `apiKey.usage.retention`). Requests an instance counted but
 * has not written yet (at most one interval's worth per key) are not in it. `keyOrId` is the key
 * itself or its id (`apiKeyId(key)`, 24 hex digits); anything else is a `TypeError`. A stored value
 * of another shape is a `StoreDataError`.
 */
export async function readApiKeyUsage (store: MultiauthStore, keyOrId: string): Promise<ApiKeyUsageTotals | null> {
  let keyId: string
  if (typeof keyOrId === 'string' && KEY_ID.test(keyOrId)) keyId = keyOrId
  else if (typeof keyOrId === 'string' && parseApiKey(keyOrId) !== undefined) keyId = apiKeyId(keyOrId)
  else throw new TypeError('readApiKeyUsage(store, keyOrId): pass an API key or its id (24 hex digits)')
  const totals = parseUsage(await store.get(usageKey(keyId)))
  return totals === null ? null : { count: totals.count, lastUsedAt: new Date(totals.lastUsedAt) }
}
