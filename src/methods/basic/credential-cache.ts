import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { ExpiringLru } from '../../lib/expiring-lru.js'
import { sha256Text } from '../../lib/hash.js'

export type { VerifiedCredentialCacheOptions } from '../../lib/expiring-lru.js'

interface Entry {
  username: string
  /** The stored hash the password was verified against; a hit requires the same hash. */
  passwordHash: string
}

// One secret per process, in front of every key: entries cannot be computed or replayed from outside it.
const PROCESS_SECRET = randomBytes(32).toString('base64url')

/**
 * A bounded, short-lived memory of Basic logins that argon2 already accepted, so a client
 * that sends the same correct password on every request costs one keyed hash instead of
 * one argon2 run. Only successes are stored; a wrong password is never remembered.
 *
 * Keys are SHA-256 digests behind a random secret made once per process (see `key`), so the
 * map never holds a password or an unsalted, offline-guessable digest of one.
 */
export class VerifiedCredentialCache {
  private readonly entries: ExpiringLru<Entry>

  constructor (
    readonly max: number,
    readonly ttl: number,
    /** Milliseconds clock; injectable so tests can move time. */
    private readonly now: () => number = Date.now
  ) {
    this.entries = new ExpiringLru(max, now)
  }

  get size (): number {
    return this.entries.size
  }

  /**
   * The cache key: SHA-256 of the process secret, the username's length, the username and the
   * password. The length in front means no (username, password) pair frames the same text as
   * another one. A secret prefix rather than an HMAC: HMAC guards a digest someone else sees
   * against length extension, and these keys never leave the process; what they must give —
   * no digest in the map that can be guessed offline without the process secret — the prefix
   * gives, in one native call instead of an HMAC object (about 0.5–1 µs instead of 2.5 per
   * cached login, docs/benchmarks.md).
   */
  key (username: string, password: string): string {
    return sha256Text(`${PROCESS_SECRET}${username.length}:${username}${password}`, 'base64url')
  }

  /** True when `key` was verified against `passwordHash` less than `ttl` ago. */
  has (key: string, passwordHash: string): boolean {
    const entry = this.entries.get(key)
    if (entry === undefined) return false
    if (entry.passwordHash === passwordHash) return true
    this.entries.delete(key)
    return false
  }

  /** Remembers a successful argon2 verification. Call it only after one. */
  add (key: string, username: string, passwordHash: string): void {
    this.entries.set(key, { username, passwordHash }, this.now() + this.ttl)
  }

  /** Drops every entry of `username`; returns how many there were. */
  clearUser (username: string): number {
    return this.entries.deleteWhere((entry) => entry.username === username)
  }

  clear (): void {
    this.entries.clear()
  }
}

/** `app.authCache`: the verified-credential cache of Basic (`basic.cache`). */
export interface AuthCache {
  /**
   * Forgets the cached Basic logins of `username` in this process. Call it when the user's
   * password changes or the account is disabled, so the old password stops working at once
   * instead of at the end of the TTL. Returns how many entries were dropped; 0 when
   * `basic.cache` is not enabled.
   */
  clear (username: string): number
}

/** `app.authCache` without a cache: nothing to forget. */
export const NO_CACHE: AuthCache = Object.freeze({ clear: () => 0 })

declare module 'fastify' {
  interface FastifyInstance {
    /** The verified-credential cache of Basic: `clear(username)` after a password change. Always present. */
    authCache: AuthCache
  }
}

/** Called by the Basic method's setup: the cache (or none) as `app.authCache`. */
export function attachCredentialCache (app: FastifyInstance, cache: VerifiedCredentialCache | undefined): void {
  app.decorate('authCache', cache === undefined ? NO_CACHE : { clear: (username: string) => cache.clearUser(username) })
}
