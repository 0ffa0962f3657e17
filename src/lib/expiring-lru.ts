import { durationMs } from '../core/durations.js'
import type { Duration } from '../core/durations.js'
import { checkKeys, checkObject, checkPositiveInteger } from '../core/validate.js'

/** `basic.cache` / `token.cache`: how many verified credentials to remember, and for how long. */
export interface VerifiedCredentialCacheOptions {
  /** Most entries kept; the least recently used one is dropped beyond it. Default 10,000. */
  max: number
  /** How long an entry stays valid after the check that made it (ms or `'1m'`). Default one minute. */
  ttl: Duration
}

const CACHE_KEYS = ['max', 'ttl']

/** Validates a `*.cache` option at registration and fills in the defaults. */
export function cacheOptions (raw: unknown, path: string): { max: number, ttl: number } {
  const options = checkObject(raw, path)
  checkKeys(options, CACHE_KEYS, path)
  checkPositiveInteger(options.max, `${path}.max`)
  return { max: (options.max as number | undefined) ?? 10_000, ttl: durationMs(options.ttl, `${path}.ttl`) ?? 60_000 }
}

/**
 * A bounded map whose entries expire: the store behind the verified-credential caches of
 * Basic (argon2 results) and tokens (signature checks). A Map keeps insertion order, so
 * re-inserting on a hit makes an entry the most recently used and the first key is always
 * the least recently used one.
 */
export class ExpiringLru<V> {
  private readonly entries = new Map<string, { value: V, expires: number }>()

  constructor (
    /** Most entries kept; the least recently used one is dropped beyond it. */
    readonly max: number,
    /** Milliseconds clock; injectable so tests can move time. */
    readonly now: () => number = Date.now
  ) {}

  get size (): number {
    return this.entries.size
  }

  /** The value stored under `key`, unless it has expired (then it is dropped). */
  get (key: string): V | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    this.entries.delete(key)
    if (this.now() >= entry.expires) return undefined
    this.entries.set(key, entry)
    return entry.value
  }

  /** Stores `value` until `expires` (ms on the same clock as `now`). */
  set (key: string, value: V, expires: number): void {
    this.entries.delete(key)
    this.entries.set(key, { value, expires })
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string)
  }

  delete (key: string): void {
    this.entries.delete(key)
  }

  /** Drops every entry whose value matches; returns how many there were. */
  deleteWhere (matches: (value: V) => boolean): number {
    let dropped = 0
    for (const [key, entry] of this.entries) {
      if (matches(entry.value)) {
        this.entries.delete(key)
        dropped++
      }
    }
    return dropped
  }

  clear (): void {
    this.entries.clear()
  }
}
