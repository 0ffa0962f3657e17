import type { FastifyRequest } from 'fastify'
import { ExpiringLru } from '../lib/expiring-lru.js'

// A failure budget's counter and its state.

export interface Budget { max: number, timeWindow: number }

/** A counter's state, as `createRateLimit()` resolves it (the part we read). */
export interface LimitResult { max: number, remaining: number, ttlInSeconds: number, isExceeded: boolean }
export type Limiter = (request: FastifyRequest, callOptions?: { increment?: boolean }) => Promise<LimitResult>

// In-process counters: enough entries that spraying usernames cannot evict a victim's counter cheaply.
export const LOCAL_CACHE = 50_000

/** A failure budget's fixed windows in this process, like @fastify/rate-limit's LocalStore, but read without a promise. */
export class LocalCounter {
  readonly #windows = new ExpiringLru<{ count: number, resetAt: number }>(LOCAL_CACHE, () => Date.now())
  readonly #fresh: LimitResult

  constructor (private readonly budget: Budget) {
    this.#fresh = Object.freeze({ max: budget.max, remaining: budget.max, ttlInSeconds: 0, isExceeded: false })
  }

  /** The counter's state, without counting. */
  peek (key: string): LimitResult {
    const window = this.#windows.get(key)
    if (window === undefined) return this.#fresh
    const { max } = this.budget
    return { max, remaining: Math.max(0, max - window.count), ttlInSeconds: Math.ceil((window.resetAt - Date.now()) / 1000), isExceeded: window.count > max }
  }

  /** Counts one refusal. */
  add (key: string): void {
    const window = this.#windows.get(key)
    if (window !== undefined) {
      window.count++
    } else {
      const resetAt = Date.now() + this.budget.timeWindow
      this.#windows.set(key, { count: 1, resetAt }, resetAt)
    }
  }
}
