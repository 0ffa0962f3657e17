import type { Duration } from '../core/durations.js'

// The `rateLimit` option: what a budget is.

/**
 * Rate limits: the failed-attempt budgets (per client IP, per Basic username), checked before
 * a credential is verified and spent by each refusal, and the per-credential budget, counted
 * after authentication. This file decides *what* is counted and *when*; the counting is done
 * in this process (synchronously, so a request that passes pays no promise), or in Redis by
 * @fastify/rate-limit's script when the store is a `RedisStore`. The per-credential budget is
 * always @fastify/rate-limit's.
 *
 * Omitted, the option means "the failure budgets at their defaults" when `basic` is
 * configured (password guessing and argon2 work are what they bound), nothing otherwise.
 * `false` turns every limit off. See docs/rate-limits.md.
 */
export interface RateLimitOptions {
  /**
   * A quota per authenticated credential: the API key's id, else the user's `id`. Off unless
   * given; `{ max, timeWindow }` (defaults 1000 per minute). A key record's own `rateLimit` is
   * counted whether or not this is on.
   */
  perCredential?: FailureBudget | false
  /**
   * Refused credentials (401 after credentials were presented, 400) per client IP
   * (`request.ip`; IPv6 per /64) per window. Once spent, requests from that IP get 429 before
   * any credential is checked. `false` turns it off. Default `{ max: 20, timeWindow: '1m' }`.
   */
  failuresPerIp?: FailureBudget | false
  /**
   * Refused Basic credentials per username per window, from any IP; once spent that username
   * gets 429 before its password is checked. `false` turns it off.
   * Default `{ max: 10, timeWindow: '15m' }`, usernames compared after NFC + lower-case.
   */
  failuresPerUser?: UsernameFailureBudget | false
}

/** One budget: at most `max` per `timeWindow`. */
export interface FailureBudget {
  /** How many per window. */
  max?: number
  /** The window: ms or a duration such as `'1 minute'`. */
  timeWindow?: Duration
}

export interface UsernameFailureBudget extends FailureBudget {
  /**
   * Maps a username to the name its budget is counted under, so the spellings your lookup
   * treats as one account share one budget. Synchronous; must return a string. Only the
   * budget uses it: `verify`/`findCredential` still receive the username as sent. Default:
   * `(username) => username.normalize('NFC').toLowerCase()`.
   */
  normalizeUsername?: (username: string) => string
}
