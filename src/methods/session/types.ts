import type { FastifyRequest } from 'fastify'
import type { Duration } from '../../core/durations.js'
import type { SessionStore } from '../../core/peer.js'
import type { AuthFailure } from '../../core/outcome.js'
import type { AuthSuccess, Awaitable, Falsy, MultiauthUser } from '../../core/types.js'

// The session method's public options and the record a session holds.

export interface SessionCsrfOptions {
  /** Other origins (`https://app.example.com`) whose pages may send unsafe requests with the session cookie. */
  trustedOrigins?: string[]
}

export interface SessionOptions {
  /** Finds the user by the id stored at login, on every request. Falsy = the user is gone or disabled: the session ends. */
  findUser: (userId: string, request: FastifyRequest) => Awaitable<MultiauthUser | Falsy>
  /** The id `authSessions.login()` stores for a user. Default: `String(user.id)`. */
  userId?: (user: MultiauthUser) => string
  /** Signs the session cookie: at least 32 characters; a list rotates (the first signs, all verify). Required unless you registered @fastify/session yourself. */
  secret?: string | string[]
  /**
   * Cookie name. Default `__Host-sid` when `secure` is true (the prefix pins Secure, Path=/ and no Domain),
   * `__Secure-sid` when it is true with a `domain`, `sid` otherwise. A `__Host-`/`__Secure-` name needs `secure: true`.
   */
  cookieName?: string
  /**
   * `Secure` cookie attribute. Default true. `false` only for local HTTP development; `'auto'` follows
   * `request.protocol`, so the cookie cannot carry a `__Host-` prefix. Both emit warning FSTMA001.
   */
  secure?: boolean | 'auto'
  /** Cookie `Domain`. Default none (host-only), which is the safest. */
  domain?: string
  /** Idle timeout (ms or `'2h'`): each authenticated response pushes the expiry forward (rolling). Default 2 hours. */
  maxAge?: Duration
  /** Absolute lifetime since login (ms or `'24h'`), whatever the activity. Default 24 hours. */
  absoluteTimeout?: Duration
  /** A @fastify/session store. Default: an adapter over the plugin's `store` (MemoryStore, or RedisStore for several instances). */
  store?: SessionStore
  /** Cross-site request defence for unsafe methods (Origin / Sec-Fetch-Site). `false` turns it off (for example when you use @fastify/csrf-protection). */
  csrf?: SessionCsrfOptions | false
}

/** What a session holds for a logged-in user: the id only, never the user object or provider tokens. */
export interface SessionRecord {
  /** user id */
  u: string
  /** login time, ms since the epoch (for the absolute timeout) */
  t: number
  /** OAuth provider that started the session, if any */
  p?: string
}

/** The session machinery `login()`, `logout()` and the oauth2 method share, found through the app. */
export interface SessionCore {
  /** Regenerates the session id and stores the user's id (and the OAuth provider, if any); resolves the stored id. */
  start (request: FastifyRequest, user: MultiauthUser, provider?: string): Promise<string>
  end (request: FastifyRequest): Promise<void>
  /** Reads the session record; `undefined` when the request has no logged-in session. */
  extract (request: FastifyRequest): SessionRecord | undefined
  verify (record: SessionRecord, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure>
}

declare module 'fastify' {
  interface Session {
    multiauth?: SessionRecord
  }
}
