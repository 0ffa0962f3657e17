/** How a write is made. */
export interface WriteOptions {
  /**
   * A security-relevant write (a revocation, "log out everywhere", a refresh-family revocation or
   * rotation, a session destroy): a store that replicates may wait for replicas before resolving (RedisStore's
   * `waitForReplicas`), so a failover cannot lose it. A store may ignore it.
   */
  durable?: boolean
}

/**
 * The small interface behind the state that must be shared between instances: revoked tokens,
 * refresh-token families and sessions (rate-limit counters go through @fastify/rate-limit, or
 * RedisStore's own slots for the failure budgets).
 * Values are strings; TTLs are in milliseconds. `get`, `set` and `delete` are required; the
 * atomic operations are optional and each says what is lost without it. Whatever a store throws
 * counts as the store being unavailable (503): requests fail closed.
 */
export interface MultiauthStore {
  get (key: string): Promise<string | null>
  /**
   * Reads several keys in one round trip (Redis MGET), in order. Optional: without it the
   * plugin falls back to one `get` per key. Token revocation checks two keys per request; the
   * plugin only ever reads together keys that share a Redis Cluster hash tag (`{…}`).
   */
  getMany? (keys: readonly string[]): Promise<Array<string | null>>
  set (key: string, value: string, ttlMs: number, options?: WriteOptions): Promise<void>
  /**
   * Sets `value` unless the key currently holds exactly `unless`, atomically; resolves `true` when
   * this call wrote. Sessions use it so a save that was in flight when the session was destroyed
   * cannot bring it back (the destroyed id holds a tombstone). Optional: without it the plugin reads,
   * then writes, which leaves a window of one round trip.
   */
  setUnlessEqual? (key: string, value: string, ttlMs: number, unless: string, options?: WriteOptions): Promise<boolean>
  /**
   * Replaces the value only while the key still holds exactly `expected`, atomically (a
   * compare-and-set); resolves `true` when this call wrote. Refresh-token rotation uses it, so of
   * two requests presenting the same refresh token only one rotates it. Optional: without it the
   * plugin reads, compares, then writes, which leaves a window of one round trip.
   */
  compareAndSet? (key: string, expected: string, value: string, ttlMs: number, options?: WriteOptions): Promise<boolean>
  /**
   * Adds `member` to the ordered set at `key` (newest last) and keeps only the newest `max`
   * members, atomically; resolves the members it dropped. Bounds refresh-token families per user.
   * Optional: without it there is no per-user bound.
   */
  addCapped? (key: string, member: string, max: number, ttlMs: number): Promise<string[]>
  delete (key: string, options?: WriteOptions): Promise<void>
  /**
   * API-key usage (`apiKey.usage`): adds `count` requests to the value at `key`, sets its
   * `lastUsedAt` to `atMs` unless a later time is stored, and its TTL to `ttlMs`, atomically. The
   * value is the JSON text `{"count":<n>,"lastUsedAt":<ms>}`, read back with `get`
   * (`readApiKeyUsage`). Optional: without it the plugin reads, then writes, so two instances
   * writing the same key's usage at the same moment may lose one's count.
   */
  recordUsage? (key: string, count: number, atMs: number, ttlMs: number): Promise<void>
  /** Releases resources the store owns (not a client the application passed in). Called when the application closes. */
  close? (): Promise<void>
}
