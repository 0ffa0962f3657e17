import type { MultiauthStore } from './types.js'
import { addUsage } from './usage-record.js'

// A string, or (only under keys the session adapter owns) an in-process session snapshot.
interface Entry { value: unknown, expiresAt: number }

/**
 * @internal The session adapter keeps sessions in this store as objects, so one process never
 * serialises them. The public methods only ever return strings. Not in the published types.
 */
export const kGetLocal = Symbol('fastify-multiauth.memoryStore.getLocal')
/** @internal */
export const kSetLocalUnless = Symbol('fastify-multiauth.memoryStore.setLocalUnless')

/** What the public API shows of a stored value: strings as they are, snapshots as JSON. */
function asString (value: unknown): string | null {
  if (value === undefined) return null
  return typeof value === 'string' ? value : JSON.stringify(value)
}

export interface MemoryStoreOptions {
  /** Clock, for tests. Defaults to `Date.now`. */
  now?: () => number
  /** Sweep expired entries every this many writes (bounded memory without a timer). Default 1000. */
  sweepEvery?: number
}

/**
 * The default store: one process only. Expired entries are dropped on read and by a
 * sweep every `sweepEvery` writes, so memory stays bounded without a background timer.
 */
export class MemoryStore implements MultiauthStore {
  readonly #map = new Map<string, Entry>()
  readonly #now: () => number
  readonly #sweepEvery: number
  #writes = 0

  constructor (options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now
    this.#sweepEvery = options.sweepEvery ?? 1000
  }

  get size (): number { return this.#map.size }

  #live (key: string): Entry | undefined {
    const entry = this.#map.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= this.#now()) {
      this.#map.delete(key)
      return undefined
    }
    return entry
  }

  #write (key: string, value: unknown, ttlMs: number): void {
    this.#map.set(key, { value, expiresAt: this.#now() + ttlMs })
    if (++this.#writes >= this.#sweepEvery) this.sweep()
  }

  /** Drops every expired entry. */
  sweep (): void {
    this.#writes = 0
    const now = this.#now()
    for (const [key, entry] of this.#map) if (entry.expiresAt <= now) this.#map.delete(key)
  }

  async get (key: string): Promise<string | null> {
    return asString(this.#live(key)?.value)
  }

  async getMany (keys: readonly string[]): Promise<Array<string | null>> {
    return keys.map((key) => asString(this.#live(key)?.value))
  }

  /** @internal */
  [kGetLocal] (key: string): unknown {
    return this.#live(key)?.value
  }

  async set (key: string, value: string, ttlMs: number): Promise<void> {
    this.#write(key, value, ttlMs)
  }

  async setUnlessEqual (key: string, value: string, ttlMs: number, unless: string): Promise<boolean> {
    return this[kSetLocalUnless](key, value, ttlMs, unless)
  }

  /** @internal Writes unless the live value is `unless` (a string): synchronous, so atomic in this process. */
  [kSetLocalUnless] (key: string, value: unknown, ttlMs: number, unless: string): boolean {
    if (this.#live(key)?.value === unless) return false
    this.#write(key, value, ttlMs)
    return true
  }

  async compareAndSet (key: string, expected: string, value: string, ttlMs: number): Promise<boolean> {
    if (this.#live(key)?.value !== expected) return false
    this.#write(key, value, ttlMs)
    return true
  }

  async addCapped (key: string, member: string, max: number, ttlMs: number): Promise<string[]> {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`addCapped: max must be a positive integer (got ${max})`)
    const current = this.#live(key)?.value
    // Kept as an array under a key of its own: the public `get` shows it as JSON, like any snapshot.
    const members = Array.isArray(current) ? current.filter((m) => m !== member) : []
    members.push(member)
    const dropped = members.length > max ? members.splice(0, members.length - max) : []
    this.#write(key, members, ttlMs)
    return dropped
  }

  async setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean> {
    if (this.#live(key) !== undefined) return false
    this.#write(key, value, ttlMs)
    return true
  }

  async delete (key: string): Promise<void> {
    this.#map.delete(key)
  }

  /** Synchronous, so atomic in this process. */
  async recordUsage (key: string, count: number, atMs: number, ttlMs: number): Promise<void> {
    this.#write(key, addUsage(asString(this.#live(key)?.value), count, atMs), ttlMs)
  }

  async increment (key: string, ttlMs: number): Promise<number> {
    const entry = this.#live(key)
    if (entry === undefined) {
      this.#write(key, '1', ttlMs)
      return 1
    }
    const next = Number(entry.value) + 1
    entry.value = String(next)
    return next
  }
}
