import { storeError } from '../../core/callbacks.js'
import { StoreUnavailableError } from '../../core/errors.js'
import type { SessionStore } from '../../core/peer.js'
import { isPlainObject } from '../../core/validate.js'
import { sha256Text } from '../../lib/hash.js'
import { healthOf } from '../../stores/health.js'
import { kGetLocal, kSetLocalUnless, MemoryStore } from '../../stores/memory.js'
import type { MultiauthStore } from '../../stores/types.js'

// Where sessions live: @fastify/session's store interface over the plugin's store (with
// tombstones, so a destroyed id stays destroyed), and the bound over an application's own store.

const STORE_PREFIX = 'sess:'
const DURABLE = Object.freeze({ durable: true })
/** The key of our login record in the session. */
export const RECORD_KEY = 'multiauth'
/** The default absolute timeout (24 hours): a session older than that is refused, so its tombstone may go then. */
export const DEFAULT_ABSOLUTE_TIMEOUT = 24 * 3_600_000
/** An unchanged session's entry is written again once 1/RENEW_FRACTION of its idle timeout has passed. */
const RENEW_FRACTION = 10

export function hashId (sessionId: string): string {
  // Redis never holds a usable session id: reading the store does not let anyone log in.
  return STORE_PREFIX + sha256Text(sessionId, 'base64url')
}

/** A value of an in-process session snapshot kept as JSON text: what Redis would keep of it. */
export class SerialisedValue {
  constructor (readonly json: string) {}
  // The public MemoryStore API shows a snapshot as the JSON the Redis path writes.
  toJSON (): unknown { return JSON.parse(this.json) }
}

/**
 * The in-process copy of a session: the same data JSON keeps (enumerable keys, the cookie's
 * `toJSON()`, no functions or undefined), with objects kept as JSON text so no request sees
 * another's changes. Only our frozen login record and primitives are kept as they are.
 */
export function snapshot (session: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {}
  for (const key in session) {
    const value = session[key]
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') continue
    if (key === 'cookie') copy.cookie = typeof (value as { toJSON?: unknown }).toJSON === 'function' ? (value as { toJSON: () => unknown }).toJSON() : value
    else if (value === null || (typeof value !== 'object' && typeof value !== 'bigint') || (key === RECORD_KEY && Object.isFrozen(value))) copy[key] = value
    // Objects (and bigints, which JSON refuses as the Redis path does) go through JSON.
    else copy[key] = new SerialisedValue(JSON.stringify(value))
  }
  return copy
}

/** A fresh session object from a snapshot, for @fastify/session to restore. */
export function fromSnapshot (copy: Record<string, unknown>): Record<string, unknown> {
  const session: Record<string, unknown> = {}
  for (const key in copy) {
    const value = copy[key]
    session[key] = value instanceof SerialisedValue ? JSON.parse(value.json) : value
  }
  return session
}

/** A stored JSON session: a corrupt entry is no session, not a crash. */
export function parseSession (raw: string): Record<string, unknown> | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    return null
  }
  return isPlainObject(parsed) ? parsed : null
}

/**
 * What a destroyed session id holds in the store until no in-flight request can matter any more:
 * a save that was already under way when the session was destroyed (logout, `login()`
 * regenerating the id, an expired or disabled user) finds it and writes nothing. Not JSON, so it
 * can never be read as a session.
 */
export const TOMBSTONE = '!destroyed'

/**
 * @fastify/session's store interface over our `MultiauthStore`, so sessions share the
 * Redis connection, key prefix and fail-closed 503 behaviour of everything else.
 * The entry lives as long as the cookie (idle timeout); a rolling save renews it once a tenth of
 * the idle timeout has passed since it was written, or whenever the request changed the session.
 * Destroying a session leaves a tombstone for `tombstoneTtlMs` (the absolute timeout: a session
 * older than that is refused anyway), and every save is conditional on it: a request that loaded
 * the session before a logout on any instance cannot bring it back when it finishes.
 * With the in-process `MemoryStore`, sessions are kept as snapshots instead of JSON text
 * (no serialisation on every rolling save) and answered without a promise.
 */
export class SessionStoreAdapter implements SessionStore {
  private readonly local: MemoryStore | undefined
  // One request reads its session, then saves it: the same id twice in a row, hashed once.
  private lastId = ''
  private lastKey = ''
  /** Ids about to be destroyed that were never stored (`neverStored`): nothing to tombstone. */
  private readonly unsaved = new Set<string>()

  constructor (private readonly store: MultiauthStore, private readonly defaultTtlMs: number, private readonly tombstoneTtlMs = DEFAULT_ABSOLUTE_TIMEOUT) {
    this.local = store instanceof MemoryStore ? store : undefined
  }

  /**
   * A rolling save with nothing to save: a logged-in session restored from the store (so its
   * cookie's `originalExpires` is the stored entry's expiry), unchanged by the request, whose
   * entry was written less than a tenth of its idle timeout ago. Steady-state requests then write
   * nothing (no Redis SET); the browser's cookie is still renewed by @fastify/session. The idle
   * timeout a user gets is between 0.9 and 1 times `maxAge`, never longer.
   */
  private unchangedAndFresh (session: any, now: number): boolean {
    const storedExpiry = session.cookie?.originalExpires
    if (!(storedExpiry instanceof Date)) return false
    // The maxAge the session was created with: @fastify/session keeps it across a redeploy.
    const maxAge = typeof session.cookie.originalMaxAge === 'number' ? session.cookie.originalMaxAge : this.defaultTtlMs
    return storedExpiry.getTime() - now > maxAge - maxAge / RENEW_FRACTION &&
      session[RECORD_KEY] !== undefined &&
      typeof session.isModified === 'function' &&
      session.isModified() === false
  }

  private key (sessionId: string): string {
    if (sessionId !== this.lastId) {
      this.lastKey = hashId(sessionId)
      this.lastId = sessionId
    }
    return this.lastKey
  }

  set (sessionId: string, session: any, callback: (err?: unknown) => void): void {
    const now = Date.now()
    if (this.unchangedAndFresh(session, now)) return callback()
    const expires = session.cookie?.expires
    const ttl = Math.max(1, expires instanceof Date ? expires.getTime() - now : this.defaultTtlMs)
    const key = this.key(sessionId)
    if (this.local !== undefined) {
      this.local[kSetLocalUnless](key, snapshot(session), ttl, TOMBSTONE)
      return callback()
    }
    const json = JSON.stringify(session)
    const { store } = this
    if (store.setUnlessEqual !== undefined) {
      store.setUnlessEqual(key, json, ttl, TOMBSTONE).then(() => callback(), callback)
      return
    }
    // A custom store without the atomic write: read, then write (a window of one round trip).
    store.get(key).then(async (current) => { if (current !== TOMBSTONE) await store.set(key, json, ttl) }).then(() => callback(), callback)
  }

  get (sessionId: string, callback: (err: unknown, result?: any) => void): void {
    if (this.local !== undefined) {
      const value = this.local[kGetLocal](this.key(sessionId))
      if (value === undefined || value === TOMBSTONE) return callback(null, null)
      // A string was written through the public API (another writer, a test): the JSON path.
      return callback(null, typeof value === 'string' ? parseSession(value) : fromSnapshot(value as Record<string, unknown>))
    }
    this.store.get(this.key(sessionId)).then((raw) => callback(null, raw === null || raw === TOMBSTONE ? null : parseSession(raw)), callback)
  }

  /** The session `sessionId` was created in this request and never saved: destroying it writes nothing. */
  neverStored (sessionId: string): void {
    this.unsaved.add(sessionId)
  }

  forget (sessionId: string): void {
    this.unsaved.delete(sessionId)
  }

  destroy (sessionId: string, callback: (err?: unknown) => void): void {
    if (this.unsaved.delete(sessionId)) return callback()
    // Durable where the store can make it so: a failover must not bring a logged-out session back.
    this.store.set(this.key(sessionId), TOMBSTONE, this.tombstoneTtlMs, DURABLE).then(() => callback(), callback)
  }
}

/**
 * A @fastify/session store the application passed (`session.store`), under the one error path:
 * each call bounded by the plugin's `callbackTimeout`, and whatever it fails with handed to
 * @fastify/session as a 503 `StoreUnavailableError` (the original as `cause`), so no driver
 * message reaches a client through Fastify's default error handler. Its failures and recovery are
 * reported like those of a custom `MultiauthStore` (`store:unavailable`, `store:recovered`).
 */
export function boundSessionStore (store: SessionStore, timeoutMs: number): SessionStore {
  const health = healthOf(store)
  function guarded (callback: (err?: unknown, result?: any) => void): (err?: unknown, result?: any) => void {
    let settled = false
    const timer = timeoutMs === 0 ? undefined : setTimeout(timedOut, timeoutMs)
    function timedOut (): void {
      if (settled) return
      health.failed('timeout')
      finish(new StoreUnavailableError())
    }
    function finish (err?: unknown, result?: any): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      // ENOENT is how connect-style stores say "no such session" (@fastify/session starts a new one): not a failure.
      if (err === undefined || err === null || (err as { code?: unknown }).code === 'ENOENT') {
        if (health.down) health.recovered()
        callback(err, result)
      } else {
        health.failed('error')
        callback(storeError(err))
      }
    }
    return finish
  }
  function run (call: (done: (err?: unknown, result?: any) => void) => void, callback: (err?: unknown, result?: any) => void): void {
    const done = guarded(callback)
    try {
      call(done)
    } catch (err) {
      done(err)
    }
  }
  return {
    set: (sessionId, session, callback) => run((done) => store.set(sessionId, session, done), callback),
    get: (sessionId, callback) => run((done) => store.get(sessionId, done), callback as (err?: unknown, result?: any) => void),
    destroy: (sessionId, callback) => run((done) => store.destroy(sessionId, done), callback)
  }
}
