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
 * `false` turns every limit off. See docs/api-keys.md, "Rate limits".
 */
export interface RateLimitOptions {
  /**
   * Requests per authenticated credential per window: the API key's id, else the user's `id`.
   * Default 1000 when `rateLimit` is given; `false` turns this budget off (it is off when
   * `rateLimit` is omitted). A key record's `rateLimit` overrides it.
   */
  max?: number | false
  /** Window of `max` in ms. Default 60 000. */
  timeWindow?: number
  /**
   * Refused credentials (401 after credentials were presented, 400) per client IP
   * (`request.ip`; IPv6 per /64) per window. Once spent, requests from that IP get 429 before
   * any credential is checked. `false` turns it off. Default `{ max: 20, timeWindow: 60_000 }`.
   */
  failuresPerIp?: FailureBudget | false
  /**
   * Refused Basic credentials per username per window, from any IP; once spent that username
   * gets 429 before its password is checked. `false` turns it off.
   * Default `{ max: 10, timeWindow: 900_000 }`, usernames compared after NFC + lower-case.
   */
  failuresPerUser?: UsernameFailureBudget | false
}

export interface FailureBudget {
  /** Refusals allowed per window. */
  max?: number
  /** Window in ms. */
  timeWindow?: number
}

export interface UsernameFailureBudget extends FailureBudget {
  /**
   * Maps a username to the name its budget is counted under, so the spellings your lookup
   * treats as one account share one budget. Synchronous; must return a string. Only the
   * budget uses it: `verify`/`findUser` still receive the username as sent. Default:
   * `(username) => username.normalize('NFC').toLowerCase()`.
   */
  normalizeUsername?: (username: string) => string
}
