import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { MultiauthOptionError, NotConfiguredError } from '../errors.js'
import { sha256Text } from '../hash.js'
import { kGetLocal, kSetLocal, MemoryStore } from '../stores/memory.js'
import { loadPeers } from '../peer.js'
import type { SessionStore } from '../peer.js'
import type { MultiauthStore } from '../stores/types.js'
import { AuthFailure, isThenable } from '../types.js'
import type { AuthMethod, AuthSuccess, Awaitable, Falsy, MultiauthUser } from '../types.js'
import { checkFunction, checkKeys, checkObject, checkPositiveInteger, checkString, isPlainObject } from '../validate.js'
import type { MethodContext } from './context.js'


export interface SessionCsrfOptions {
  /** Other origins (`https://app.example.com`) whose pages may send unsafe requests with the session cookie. */
  trustedOrigins?: string[]
}

export interface SessionOptions {
  /** Looks the user up by the id stored at login, on every request. Falsy = the user is gone or disabled: the session ends. */
  lookup: (userId: string, request: FastifyRequest) => Awaitable<MultiauthUser | Falsy>
  /** The id `login()` stores for a user. Default: `String(user.id)`. */
  userId?: (user: MultiauthUser) => string
  /** Signs the session cookie: at least 32 characters; a list rotates (the first signs, all verify). Required unless you registered @fastify/session yourself. */
  secret?: string | string[]
  /** Cookie name. Default `__Host-sid` when `secure` is true (the prefix pins Secure, Path=/ and no Domain), `sid` otherwise. */
  cookieName?: string
  /** `Secure` cookie attribute. Default true; `false` only for local HTTP development; `'auto'` follows `request.protocol`. */
  secure?: boolean | 'auto'
  /** Cookie `Domain`. Default none (host-only), which is the safest. */
  domain?: string
  /** Idle timeout in ms: each authenticated response pushes the expiry forward (rolling). Default 2 hours. */
  maxAge?: number
  /** Absolute lifetime in ms since login, whatever the activity. Default 24 hours. */
  absoluteTimeout?: number
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

declare module 'fastify' {
  interface Session {
    multiauth?: SessionRecord
  }
}

const OPTION_KEYS = ['lookup', 'userId', 'secret', 'cookieName', 'secure', 'domain', 'maxAge', 'absoluteTimeout', 'store', 'csrf']
/** Options that configure @fastify/session itself: they cannot apply when the application registered it. */
const REGISTRATION_KEYS = ['secret', 'secure', 'domain', 'maxAge', 'store']
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])
const STORE_PREFIX = 'sess:'
const HOUR = 3_600_000

const EXPIRED = new AuthFailure('session past its absolute timeout')
const USER_GONE = new AuthFailure('session user no longer exists or is disabled')
const CROSS_SITE = new AuthFailure('unsafe cross-site request with the session cookie', 'Cross-site request refused')
const NOT_OAUTH = new AuthFailure('session was not started by an OAuth2 login')

/** The session machinery `login()`, `logout()` and the oauth2 method share, found through the app. */
export interface SessionCore {
  /** Regenerates the session id and stores the user's id (and the OAuth provider, if any). */
  start (request: FastifyRequest, user: MultiauthUser, provider?: string): Promise<void>
  end (request: FastifyRequest): Promise<void>
  /** Reads the session record; `undefined` when the request has no logged-in session. */
  extract (request: FastifyRequest): SessionRecord | undefined
  verify (record: SessionRecord, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure>
}

const kCore = Symbol.for('fastify-multiauth.session')
const kLoggedOut = Symbol('fastify-multiauth.loggedOut')
const RECORD_KEY = 'multiauth'

function hashId (sessionId: string): string {
  // Redis never holds a usable session id: reading the store does not let anyone log in.
  return STORE_PREFIX + sha256Text(sessionId, 'base64url')
}

/** A value of an in-process session snapshot kept as JSON text: what Redis would keep of it. */
class SerialisedValue {
  constructor (readonly json: string) {}
  // The public MemoryStore API shows a snapshot as the JSON the Redis path writes.
  toJSON (): unknown { return JSON.parse(this.json) }
}

/**
 * The in-process copy of a session: the same data JSON keeps (enumerable keys, the cookie's
 * `toJSON()`, no functions or undefined), with objects kept as JSON text so no request sees
 * another's changes. Only our frozen login record and primitives are kept as they are.
 */
function snapshot (session: Record<string, unknown>): Record<string, unknown> {
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
function fromSnapshot (copy: Record<string, unknown>): Record<string, unknown> {
  const session: Record<string, unknown> = {}
  for (const key in copy) {
    const value = copy[key]
    session[key] = value instanceof SerialisedValue ? JSON.parse(value.json) : value
  }
  return session
}

/** A stored JSON session: a corrupt entry is no session, not a crash. */
function parseSession (raw: string): Record<string, unknown> | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    return null
  }
  return isPlainObject(parsed) ? parsed : null
}

/**
 * @fastify/session's store interface over our `MultiauthStore`, so sessions share the
 * Redis connection, key prefix and fail-closed 503 behaviour of everything else.
 * The entry lives as long as the cookie (idle timeout); a rolling save renews both.
 * With the in-process `MemoryStore`, sessions are kept as snapshots instead of JSON text
 * (no serialisation on every rolling save) and answered without a promise.
 */
export class SessionStoreAdapter implements SessionStore {
  private readonly local: MemoryStore | undefined
  // One request reads its session, then saves it: the same id twice in a row, hashed once.
  private lastId = ''
  private lastKey = ''

  constructor (private readonly store: MultiauthStore, private readonly defaultTtlMs: number) {
    this.local = store instanceof MemoryStore ? store : undefined
  }

  private key (sessionId: string): string {
    if (sessionId !== this.lastId) {
      this.lastKey = hashId(sessionId)
      this.lastId = sessionId
    }
    return this.lastKey
  }

  set (sessionId: string, session: any, callback: (err?: unknown) => void): void {
    const expires = session.cookie?.expires
    const ttl = Math.max(1, expires instanceof Date ? expires.getTime() - Date.now() : this.defaultTtlMs)
    if (this.local !== undefined) {
      this.local[kSetLocal](this.key(sessionId), snapshot(session), ttl)
      return callback()
    }
    this.store.set(this.key(sessionId), JSON.stringify(session), ttl).then(() => callback(), callback)
  }

  get (sessionId: string, callback: (err: unknown, result?: any) => void): void {
    if (this.local !== undefined) {
      const value = this.local[kGetLocal](this.key(sessionId))
      if (value === undefined) return callback(null, null)
      // A string was written through the public API (another writer, a test): the JSON path.
      return callback(null, typeof value === 'string' ? parseSession(value) : fromSnapshot(value as Record<string, unknown>))
    }
    this.store.get(this.key(sessionId)).then((raw) => callback(null, raw === null ? null : parseSession(raw)), callback)
  }

  destroy (sessionId: string, callback: (err?: unknown) => void): void {
    this.store.delete(this.key(sessionId)).then(() => callback(), callback)
  }
}

function checkTrustedOrigins (csrf: unknown): Set<string> | undefined {
  if (csrf === false) return undefined
  if (csrf === undefined) return new Set()
  const options = checkObject(csrf, 'session.csrf')
  checkKeys(options, ['trustedOrigins'], 'session.csrf')
  const list = options.trustedOrigins ?? []
  if (!Array.isArray(list)) throw new MultiauthOptionError('session.csrf.trustedOrigins must be an array of origins')
  return new Set(list.map((origin: unknown) => {
    let parsed: URL | undefined
    try { parsed = new URL(String(origin)) } catch {}
    if (typeof origin !== 'string' || parsed === undefined || parsed.origin !== origin) {
      throw new MultiauthOptionError(`session.csrf.trustedOrigins: "${String(origin)}" is not an origin like https://app.example.com`)
    }
    return origin
  }))
}

/**
 * Whether an unsafe request carrying the session cookie comes from our own pages.
 * Browsers send `Sec-Fetch-Site` (all current ones) and `Origin` on every POST, and a
 * page cannot forge either; a request with neither is refused, because a session
 * cookie comes from a browser (non-browser clients use Basic, tokens or API keys).
 */
function sameOriginRequest (request: FastifyRequest, trusted: ReadonlySet<string>): boolean {
  const origin = request.headers.origin
  const site = request.headers['sec-fetch-site']
  if (site === 'same-origin' || site === 'none') return true
  if (origin === undefined) return false
  if (trusted.has(origin)) return true
  // Sec-Fetch-Site says cross-site or same-site: only a trusted origin may pass.
  if (site !== undefined) return false
  return origin === `${request.protocol}://${request.host.toLowerCase()}`
}

/** Finds the session machinery, for `login()` / `logout()`; a 500 when the session method is not configured. */
function coreOf (request: FastifyRequest): SessionCore {
  const core = (request.server as unknown as Record<symbol, SessionCore | undefined>)[kCore]
  if (core === undefined) throw new NotConfiguredError('session')
  return core
}

/**
 * Logs `user` in: regenerates the session id (no session fixation: an id set before
 * login never authenticates), then stores only the user's id. Call it after you
 * checked the credentials, e.g. in your login form's POST handler.
 */
export async function login (request: FastifyRequest, user: MultiauthUser): Promise<void> {
  await coreOf(request).start(request, user)
}

/** Logs out: destroys the session server-side (every instance sharing the store) and clears the cookie. */
export async function logout (request: FastifyRequest): Promise<void> {
  await coreOf(request).end(request)
}

function defaultUserId (user: MultiauthUser): string {
  const id = (user as { id?: unknown }).id
  if (typeof id === 'string' && id.length > 0) return id
  if (typeof id === 'number' || typeof id === 'bigint') return String(id)
  throw new MultiauthOptionError('login(): the user has no string or number "id"; pass session.userId(user) to say which id to store')
}

export function createSessionMethod (raw: unknown, ctx: MethodContext): AuthMethod & { core: SessionCore } {
  const [fastifyCookie, fastifySession] = loadPeers('the "session" option', ['@fastify/cookie', '@fastify/session'])
  const options = checkObject(raw, 'session') as unknown as SessionOptions
  checkKeys(options as unknown as Record<string, unknown>, OPTION_KEYS, 'session')
  checkFunction(options.lookup, 'session.lookup')
  checkFunction(options.userId, 'session.userId', false)
  checkString(options.cookieName, 'session.cookieName', false)
  checkString(options.domain, 'session.domain', false)
  checkPositiveInteger(options.maxAge, 'session.maxAge')
  checkPositiveInteger(options.absoluteTimeout, 'session.absoluteTimeout')
  if (options.secure !== undefined && typeof options.secure !== 'boolean' && options.secure !== 'auto') {
    throw new MultiauthOptionError('session.secure must be true, false or "auto"')
  }
  if (options.secret !== undefined) {
    const secrets = Array.isArray(options.secret) ? options.secret : [options.secret]
    if (secrets.length === 0 || !secrets.every((s) => typeof s === 'string' && s.length >= 32)) {
      throw new MultiauthOptionError('session.secret must be a string of at least 32 characters, or a non-empty list of them')
    }
  }
  if (options.store !== undefined) {
    for (const name of ['get', 'set', 'destroy']) {
      if (typeof (options.store as unknown as Record<string, unknown>)[name] !== 'function') {
        throw new MultiauthOptionError(`session.store.${name} must be a function (a @fastify/session store)`)
      }
    }
  }
  const trustedOrigins = checkTrustedOrigins(options.csrf)
  const { lookup } = options
  const userIdOf = options.userId ?? defaultUserId
  const secure = options.secure ?? true
  const maxAge = options.maxAge ?? 2 * HOUR
  const absoluteTimeout = options.absoluteTimeout ?? 24 * HOUR
  // Filled in setup(): the cookie @fastify/session writes, so logout() can clear exactly it.
  let cookieName = options.cookieName ?? (secure === true && options.domain === undefined ? '__Host-sid' : 'sid')
  let clearOptions: { path: string, domain?: string, secure?: boolean, httpOnly: boolean, sameSite: 'lax' } = {
    path: '/', domain: options.domain, secure: secure === true, httpOnly: true, sameSite: 'lax'
  }

  async function destroy (request: FastifyRequest): Promise<void> {
    if (request.session === null || typeof request.session?.destroy !== 'function') return
    await request.session.destroy()
    ;(request as unknown as Record<symbol, boolean>)[kLoggedOut] = true
  }

  const core: SessionCore = {
    async start (request, user, provider) {
      if (typeof request.session?.regenerate !== 'function') throw new NotConfiguredError('session')
      const record: SessionRecord = { u: userIdOf(user), t: Date.now() }
      if (provider !== undefined) record.p = provider
      // A new id, and the old one destroyed in the store: whatever id the browser had
      // before (perhaps planted by an attacker) is worthless after login.
      await request.session.regenerate()
      // Frozen: the in-process store may share it between requests instead of copying it.
      request.session.set(RECORD_KEY, Object.freeze(record))
      request.user = user
    },
    end: destroy,
    extract (request) {
      const record = request.session?.get?.(RECORD_KEY)
      return typeof record?.u === 'string' && typeof record.t === 'number' ? record : undefined
    },
    verify (record, request) {
      if (Date.now() - record.t > absoluteTimeout) return destroy(request).then(() => EXPIRED)
      if (trustedOrigins !== undefined && !SAFE_METHODS.has(request.method) && !sameOriginRequest(request, trustedOrigins)) {
        return CROSS_SITE
      }
      // No promise when `lookup` answers synchronously: the guard then needs none either.
      const user = lookup(record.u, request)
      return isThenable(user) ? Promise.resolve(user).then((value) => found(value, record, request)) : found(user, record, request)
    }
  }

  function found (user: MultiauthUser | Falsy, record: SessionRecord, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthFailure> {
    if (!user) return destroy(request).then(() => USER_GONE)
    return record.p === undefined
      ? { user, method: 'session' }
      : { user, method: 'oauth2', provider: record.p }
  }

  async function setup (app: FastifyInstance): Promise<void> {
    if (app.hasPlugin('@fastify/session')) {
      // The application owns the cookie settings; only our own options apply.
      const conflicting = REGISTRATION_KEYS.filter((key) => (options as unknown as Record<string, unknown>)[key] !== undefined)
      if (conflicting.length > 0) {
        throw new MultiauthOptionError(`@fastify/session is already registered, so session.${conflicting.join(', session.')} cannot apply; configure them on your @fastify/session registration (and pass session.cookieName if it is not "sessionId")`)
      }
      cookieName = options.cookieName ?? 'sessionId'
      clearOptions = { path: '/', httpOnly: true, sameSite: 'lax' }
      app.log.debug('multiauth: using the application\'s @fastify/session registration')
    } else {
      if (options.secret === undefined) throw new MultiauthOptionError('session.secret is required (at least 32 characters) unless you register @fastify/session yourself')
      if (!app.hasPlugin('@fastify/cookie')) await app.register(fastifyCookie)
      await app.register(fastifySession, {
        secret: options.secret,
        cookieName,
        // Anonymous visitors get no session and no store entry: only login() creates one.
        saveUninitialized: false,
        rolling: true,
        store: options.store ?? new SessionStoreAdapter(ctx.store, maxAge),
        cookie: { httpOnly: true, secure, sameSite: 'lax', path: '/', domain: options.domain, maxAge }
      })
    }
    app.decorate(kCore as unknown as string, core)
    // @fastify/session sends nothing once a session is destroyed; logout() must also clear the cookie.
    // Callback style: it runs on every response, and an async hook would cost a promise each time.
    app.addHook('onSend', (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void) => {
      if ((request as unknown as Record<symbol, boolean>)[kLoggedOut] === true) reply.clearCookie(cookieName, clearOptions)
      done(null, payload)
    })
  }

  return {
    name: 'session',
    core,
    extract: core.extract,
    verify: core.verify,
    setup,
    // After setup: the cookie name is final only then (the application's own @fastify/session).
    securitySchemes: () => ({ session: { type: 'apiKey', in: 'cookie', name: cookieName } })
  }
}

/** The `oauth2` guard method: a session begun by an OAuth2 login, with the same checks as `session`. */
export function oauth2SessionMethod (core: SessionCore, setup: AuthMethod['setup'], securitySchemes?: AuthMethod['securitySchemes']): AuthMethod {
  return {
    name: 'oauth2',
    securitySchemes,
    extract: core.extract,
    verify (record: SessionRecord, request) {
      return record.p === undefined ? NOT_OAUTH : core.verify(record, request)
    },
    setup
  }
}
