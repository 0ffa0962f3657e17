import { boundedStore } from '../core/callbacks.js'
import { StoreDataError } from '../core/errors.js'
import { healthOf } from './health.js'
import { MemoryStore } from './memory.js'
import { isRedisStore } from './redis.js'
import type { MultiauthStore } from './types.js'

// Answers a custom store must give, checked as they come back: a value of another type (an
// `undefined` for a missing key, a number for a flag) would otherwise be read as "not revoked".
function text (value: unknown): string | null {
  if (value === null || typeof value === 'string') return value
  throw new StoreDataError({ cause: new TypeError(`store.get resolved ${typeof value}, not a string or null`) })
}

function texts (value: unknown, length: number): Array<string | null> {
  if (!Array.isArray(value) || value.length !== length) {
    throw new StoreDataError({ cause: new TypeError(`store.getMany did not resolve an array of ${length} entries`) })
  }
  return value.map(text)
}

function strings (value: unknown): string[] {
  if (Array.isArray(value) && value.every((entry) => typeof entry === 'string')) return value
  throw new StoreDataError({ cause: new TypeError('store.addCapped did not resolve an array of strings') })
}

function flag (value: unknown): boolean {
  if (typeof value === 'boolean') return value
  throw new StoreDataError({ cause: new TypeError(`store.setUnlessEqual/compareAndSet resolved ${typeof value}, not a boolean`) })
}

/**
 * The store as the plugin uses it. Our own stores already fail closed with
 * `StoreUnavailableError` and bound their commands (RedisStore's `commandTimeout`), so they are
 * used as they are. A custom `MultiauthStore` is wrapped: every call is bounded by the plugin's
 * `callbackTimeout`, whatever it throws (a driver error naming a host and a password, say) becomes a
 * 503 with the original only as `cause`, and an answer of the wrong type is a 500. Failures and
 * the recovery after them are reported per store object (`store:unavailable`, `store:recovered`).
 */
export function guardStore (store: MultiauthStore, timeoutMs: number): MultiauthStore {
  if (store instanceof MemoryStore || isRedisStore(store)) return store
  const health = healthOf(store)
  // Async arrows: a store method that throws synchronously becomes a rejection, bounded like the rest.
  const guarded: MultiauthStore = {
    get: async (key) => text(await boundedStore(timeoutMs, (async () => await store.get(key))(), health)),
    // `options` only when given: a store written before it existed sees the calls it always saw.
    set: async (key, value, ttlMs, options) => { await boundedStore(timeoutMs, (async () => { await (options === undefined ? store.set(key, value, ttlMs) : store.set(key, value, ttlMs, options)) })(), health) },
    delete: async (key, options) => { await boundedStore(timeoutMs, (async () => { await (options === undefined ? store.delete(key) : store.delete(key, options)) })(), health) }
  }
  const { getMany, setUnlessEqual, compareAndSet, addCapped, close } = store
  if (compareAndSet !== undefined) {
    guarded.compareAndSet = async (key, expected, value, ttlMs, options) => flag(await boundedStore(timeoutMs, (async () => await (options === undefined ? compareAndSet.call(store, key, expected, value, ttlMs) : compareAndSet.call(store, key, expected, value, ttlMs, options)))(), health))
  }
  if (addCapped !== undefined) {
    guarded.addCapped = async (key, member, max, ttlMs) => strings(await boundedStore(timeoutMs, (async () => await addCapped.call(store, key, member, max, ttlMs))(), health))
  }
  if (setUnlessEqual !== undefined) {
    guarded.setUnlessEqual = async (key, value, ttlMs, unless, options) => flag(await boundedStore(timeoutMs, (async () => await (options === undefined ? setUnlessEqual.call(store, key, value, ttlMs, unless) : setUnlessEqual.call(store, key, value, ttlMs, unless, options)))(), health))
  }
  if (getMany !== undefined) {
    guarded.getMany = async (keys) => texts(await boundedStore(timeoutMs, (async () => await getMany.call(store, keys))(), health), keys.length)
  }
  if (close !== undefined) guarded.close = async () => { await close.call(store) }
  // API-key usage (src/methods/api-key/usage.ts): bounded like the rest; its failures are logged, never a refusal.
  const { recordUsage } = store
  if (recordUsage !== undefined) {
    guarded.recordUsage = async (key, count, atMs, ttlMs) => { await boundedStore(timeoutMs, (async () => { await recordUsage.call(store, key, count, atMs, ttlMs) })(), health) }
  }
  return guarded
}
