import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { callbackError, storeError } from '../../core/callbacks.js'
import { MultiauthOptionError, NotConfiguredError, StoreUnavailableError } from '../../core/errors.js'
import { sha256Text } from '../../lib/hash.js'
import { kGetLocal, kSetLocalUnless, MemoryStore } from '../../stores/memory.js'
import { loadPeers } from '../../core/peer.js'
import type { SessionStore } from '../../core/peer.js'
import type { MultiauthStore } from '../../stores/types.js'
import { AuthFailure, isThenable } from '../../core/types.js'
import type { AuthMethod, AuthSuccess, Awaitable, Falsy, MultiauthUser } from '../../core/types.js'
import { checkFunction, checkKeys, checkObject, checkPositiveInteger, checkString, isPlainObject, keyMaterialKind } from '../../core/validate.js'
import { FSTMA001, FSTMA006, FSTMA007 } from '../../core/warnings.js'
import type { MethodContext } from '../context.js'


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
const DEFAULT_ABSOLUTE_TIMEOUT = 24 * HOUR

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
 * What a destroyed session id holds in the store until no in-flight request can matter any more:
 * a save that was already under way when the session was destroyed (logout, `login()`
 * regenerating the id, an expired or disabled user) finds it and writes nothing. Not JSON, so it
 * can never be read as a session.
 */
const TOMBSTONE = '!destroyed'

/**
 * @fastify/session's store interface over our `MultiauthStore`, so sessions share the
 * Redis connection, key prefix and fail-closed 503 behaviour of everything else.
 * The entry lives as long as the cookie (idle timeout); a rolling save renews both.
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

  constructor (private readonly store: MultiauthStore, private readonly defaultTtlMs: number, private readonly tombstoneTtlMs = DEFAULT_ABSOLUTE_TIMEOUT) {
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

  destroy (sessionId: string, callback: (err?: unknown) => void): void {
    this.store.set(this.key(sessionId), TOMBSTONE, this.tombstoneTtlMs).then(() => callback(), callback)
  }
}

/**
 * A @fastify/session store the application passed (`session.store`), under the one error path:
 * each call bounded by the plugin's `timeout`, and whatever it fails with handed to
 * @fastify/session as a 503 `StoreUnavailableError` (the original as `cause`), so no driver
 * message reaches a client through Fastify's default error handler.
 */
export function boundSessionStore (store: SessionStore, timeoutMs: number): SessionStore {
  function guarded (callback: (err?: unknown, result?: any) => void): (err?: unknown, result?: any) => void {
    let settled = false
    const timer = timeoutMs === 0 ? undefined : setTimeout(() => finish(new StoreUnavailableError()), timeoutMs)
    function finish (err?: unknown, result?: any): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      // ENOENT is how connect-style stores say "no such session" (@fastify/session starts a new one): not a failure.
      if (err === undefined || err === null || (err as { code?: unknown }).code === 'ENOENT') callback(err, result)
      else callback(storeError(err))
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

/** The attributes a session cookie was set with: a cookie is only replaced (cleared) by one with the same name, Path and Domain, and a `__Host-` one only by a Secure one. */
interface CookieAttributes {
  path: string
  domain?: string
  secure: boolean
  httpOnly: boolean
  sameSite?: boolean | 'lax' | 'strict' | 'none'
  partitioned?: boolean
}

/** Read from the session's own cookie (as @fastify/session resolved it for this session), whatever configured it. */
function attributesOf (cookie: Record<string, unknown> | undefined): CookieAttributes {
  const attributes: CookieAttributes = {
    path: typeof cookie?.path === 'string' ? cookie.path : '/',
    secure: cookie?.secure === true,
    httpOnly: cookie?.httpOnly !== false
  }
  if (typeof cookie?.domain === 'string') attributes.domain = cookie.domain
  const sameSite = cookie?.sameSite
  if (typeof sameSite === 'boolean' || sameSite === 'lax' || sameSite === 'strict' || sameSite === 'none') attributes.sameSite = sameSite
  if (cookie?.partitioned === true) attributes.partitioned = true
  return attributes
}

/**
 * The default cookie name: a prefix whenever the cookie is always Secure, so the browser
 * enforces what the flags say (RFC 6265bis §4.1.3). With `'auto'` the Secure flag varies per
 * request while the name is fixed at registration, so no prefix can apply.
 */
function defaultCookieName (secure: boolean | 'auto', domain: string | undefined): string {
  if (secure !== true) return 'sid'
  return domain === undefined ? '__Host-sid' : '__Secure-sid'
}

/** Browsers drop a `__Host-`/`__Secure-` cookie whose flags break its prefix (case-insensitively): refuse that at registration. */
function checkCookiePrefix (name: string, secure: boolean | 'auto', domain: string | undefined): void {
  const prefix = /^__(host|secure)-/i.exec(name)?.[1]?.toLowerCase()
  if (prefix === undefined) return
  const label = prefix === 'host' ? '__Host-' : '__Secure-'
  if (secure !== true) {
    throw new MultiauthOptionError(`session.cookieName "${name}" has the ${label} prefix, which browsers accept only on a Secure cookie: it needs session.secure: true (with ${JSON.stringify(secure)} the cookie would be refused or lose its protection)`)
  }
  if (prefix === 'host' && domain !== undefined) {
    throw new MultiauthOptionError(`session.cookieName "${name}": a __Host- cookie cannot have a Domain; remove session.domain or use the __Secure- prefix`)
  }
}

/**
 * The cookie settings of an application's own @fastify/session registration, read through its
 * public `decryptSession` decorator: an id that does not verify yields a fresh session with
 * exactly those settings (nothing is read from or written to the store).
 */
function applicationCookie (app: FastifyInstance, protocol: 'http' | 'https'): Record<string, unknown> | undefined {
  const probe: { protocol: string, session?: { cookie?: Record<string, unknown> } } = { protocol }
  try {
    ;(app as unknown as { decryptSession: (id: string, request: object, done: () => void) => void }).decryptSession('', probe, () => {})
  } catch {
    return undefined
  }
  return probe.session?.cookie
}

/** Refuses what cannot be made safe in the application's @fastify/session registration, warns about the rest. */
function inspectApplicationSession (app: FastifyInstance): void {
  const overHttps = applicationCookie(app, 'https')
  if (overHttps === undefined) return
  if (overHttps.httpOnly === false) {
    throw new MultiauthOptionError('@fastify/session is registered with cookie.httpOnly: false: any script on the page (one XSS) could read the session cookie and take the session elsewhere; remove httpOnly: false')
  }
  if (overHttps.secure !== true) FSTMA001('@fastify/session cookie.secure: false')
  else if (applicationCookie(app, 'http')?.secure !== true) FSTMA001('@fastify/session cookie.secure: "auto"')
  const sameSite = overHttps.sameSite
  if (typeof sameSite === 'string' && sameSite.toLowerCase() === 'none') FSTMA007('SameSite=None')
  else if (sameSite === undefined || sameSite === null || sameSite === false) FSTMA007('without SameSite (Firefox and Safari then treat it as None)')
}

/** A session @fastify/session saved although it holds nothing and the request had no cookie: `saveUninitialized: true`. */
function savedEmptySession (session: Record<string, unknown> | null | undefined): boolean {
  if (session === null || session === undefined || typeof session.isSaved !== 'function' || session.isSaved() !== true) return false
  for (const key in session) if (key !== 'cookie') return false
  return true
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
    for (const secret of secrets) {
      // A public key as the cookie-signing secret would let anyone who has it sign cookies.
      const asKey = keyMaterialKind(Buffer.from(secret))
      if (asKey !== undefined) throw new MultiauthOptionError(`session.secret is ${asKey}, not a secret`)
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

  /** The id `login()` stores: `session.userId` under the one error path, and only ever a non-empty string. */
  function storedIdOf (user: MultiauthUser): string {
    let id: unknown
    try {
      id = userIdOf(user)
    } catch (err) {
      throw callbackError(err)
    }
    if (typeof id !== 'string' || id.length === 0) throw callbackError(new TypeError('session.userId(user) must return a non-empty string'))
    return id
  }
  const secure = options.secure ?? true
  const maxAge = options.maxAge ?? 2 * HOUR
  const absoluteTimeout = options.absoluteTimeout ?? DEFAULT_ABSOLUTE_TIMEOUT
  // Final in setup() (the application's own @fastify/session names its cookie).
  let cookieName = options.cookieName ?? defaultCookieName(secure, options.domain)
  checkCookiePrefix(cookieName, secure, options.domain)

  async function destroy (request: FastifyRequest): Promise<void> {
    if (request.session === null || typeof request.session?.destroy !== 'function') return
    // Read before destroy() drops the session: the clearing cookie must carry the attributes this one was set with.
    const attributes = attributesOf(request.session.cookie as unknown as Record<string, unknown> | undefined)
    await request.session.destroy()
    ;(request as unknown as Record<symbol, CookieAttributes>)[kLoggedOut] = attributes
  }

  const core: SessionCore = {
    async start (request, user, provider) {
      if (typeof request.session?.regenerate !== 'function') throw new NotConfiguredError('session')
      const record: SessionRecord = { u: storedIdOf(user), t: Date.now() }
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
      // A stored record of another shape (another writer, an old format) is no login.
      return typeof record?.u === 'string' && typeof record.t === 'number' && (record.p === undefined || typeof record.p === 'string') ? record : undefined
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
    const applicationOwned = app.hasPlugin('@fastify/session')
    if (applicationOwned) {
      // The application owns the cookie settings; only our own options apply.
      const conflicting = REGISTRATION_KEYS.filter((key) => (options as unknown as Record<string, unknown>)[key] !== undefined)
      if (conflicting.length > 0) {
        throw new MultiauthOptionError(`@fastify/session is already registered, so session.${conflicting.join(', session.')} cannot apply; configure them on your @fastify/session registration (and pass session.cookieName if it is not "sessionId")`)
      }
      cookieName = options.cookieName ?? 'sessionId'
      inspectApplicationSession(app)
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
        store: options.store === undefined ? new SessionStoreAdapter(ctx.store, maxAge, absoluteTimeout) : boundSessionStore(options.store, ctx.timeoutMs),
        cookie: { httpOnly: true, secure, sameSite: 'lax', path: '/', domain: options.domain, maxAge }
      })
    }
    app.decorate(kCore as unknown as string, core)
    // Only a list of secrets (ours), or a registration we cannot see into, can verify a cookie with an older one.
    if (applicationOwned || Array.isArray(options.secret)) app.addHook('onRequest', renewOldSignature)
    // saveUninitialized is not readable from the application's registration: noticed at the first such save.
    let watchUninitialized = applicationOwned
    // @fastify/session sends nothing once a session is destroyed; logout() must also clear the cookie.
    // Callback style: it runs on every response, and an async hook would cost a promise each time.
    app.addHook('onSend', (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void) => {
      const cleared = (request as unknown as Record<symbol, CookieAttributes | undefined>)[kLoggedOut]
      if (cleared !== undefined) {
        reply.clearCookie(cookieName, cleared)
      } else if (watchUninitialized && request.cookies?.[cookieName] === undefined && savedEmptySession(request.session as unknown as Record<string, unknown>)) {
        watchUninitialized = false
        FSTMA006()
      }
      done(null, payload)
    })
  }

  /**
   * Secret rotation: a cookie signed with an older secret verifies, and @fastify/session re-signs
   * the id with the first secret, but only in memory. Seeing the cookie differ from that value, its
   * onSend would not save the session and would clear the cookie (without Secure, which a browser
   * ignores for a __Host- cookie), so every user is logged out once the old secret is retired.
   * After @fastify/session's onRequest, this points the request's view of the cookie at the
   * re-signed value: the rolling save then stores the session and sends the cookie signed with
   * the first secret, once.
   */
  function renewOldSignature (request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
    const session = request.session as { sessionId?: unknown, encryptedSessionId?: unknown } | null
    const raw = request.cookies?.[cookieName]
    const signed = session?.encryptedSessionId
    if (raw !== undefined && typeof signed === 'string' && !raw.endsWith(signed)) {
      // The restored id under another signature (a fresh session from a bad cookie has a new id).
      const at = raw.indexOf(`${String(session?.sessionId)}.`)
      if (at !== -1) (request.cookies as Record<string, string>)[cookieName] = raw.slice(0, at) + signed
    }
    done()
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
