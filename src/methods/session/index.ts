import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { callbackError } from '../../core/callbacks.js'
import { CrossSiteError, MultiauthOptionError, NotConfiguredError } from '../../core/errors.js'
import { events, requestFields } from '../../core/events.js'
import { loadPeers } from '../../core/peer.js'
import { AuthFailure, isThenable, setRequestUser } from '../../core/outcome.js'
import type { AuthMethod, AuthSuccess, Falsy, MultiauthUser } from '../../core/types.js'
import { checkFunction, checkKeys, checkObject, checkString, keyMaterialKind } from '../../core/validate.js'
import { FSTMA006 } from '../../core/warnings.js'
import type { MethodContext } from '../context.js'
import { durationMs } from '../../core/durations.js'
import { attributesOf, checkCookiePrefix, defaultCookieName, inspectApplicationSession, savedEmptySession } from './cookies.js'
import type { CookieAttributes } from './cookies.js'
import { checkTrustedOrigins, SAFE_METHODS, sameOriginRequest } from './csrf.js'
import { boundSessionStore, DEFAULT_ABSOLUTE_TIMEOUT, RECORD_KEY, SessionStoreAdapter } from './store-adapter.js'
import type { SessionCore, SessionOptions, SessionRecord } from './types.js'

// The `session` method: @fastify/session + @fastify/cookie registered with safe settings, the
// session checked on every request (absolute timeout, CSRF, the user still there), login/logout.
// Cookies: ./cookies.ts; CSRF: ./csrf.ts; where sessions live: ./store-adapter.ts.

export type { SessionCsrfOptions, SessionOptions, SessionRecord, SessionCore } from './types.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Log a request in or out (`login(request, user)`, `logout(request)`). Always present; without `session`, a 500. */
    authSessions: AuthSessions
  }
}
export { SessionStoreAdapter } from './store-adapter.js'

const OPTION_KEYS = ['findUser', 'userId', 'secret', 'cookieName', 'secure', 'domain', 'maxAge', 'absoluteTimeout', 'store', 'csrf']
/** Options that configure @fastify/session itself: they cannot apply when the application registered it. */
const REGISTRATION_KEYS = ['secret', 'secure', 'domain', 'maxAge', 'store']
const HOUR = 3_600_000

const EXPIRED = new AuthFailure('expired', 'session past its absolute timeout')
const USER_GONE = new AuthFailure('unknown-user', 'session user no longer exists or is disabled')
const CROSS_SITE = new AuthFailure('cross-site', 'unsafe cross-site request with the session cookie', () => new CrossSiteError())
const NOT_OAUTH = new AuthFailure('not-oauth2', 'session was not started by an OAuth2 login')

const kLoggedOut = Symbol('fastify-multiauth.loggedOut')

/** `app.authSessions`: log a request in or out. Always decorated; without `session` both reject (500, fail closed). */
export interface AuthSessions {
  /**
   * Logs `user` in: regenerates the session id (no session fixation: an id set before login
   * never authenticates), then stores only the user's id. Call it after you checked the
   * credentials, e.g. in your login form's POST handler.
   */
  login (request: FastifyRequest, user: MultiauthUser): Promise<void>
  /** Logs out: destroys the session server-side (every instance sharing the store) and clears the cookie. */
  logout (request: FastifyRequest): Promise<void>
}

/** `app.authSessions` when the `session` method is not configured: every call is a 500, never a silent pass. */
export const sessionsNotConfigured: AuthSessions = {
  async login () { throw new NotConfiguredError('session') },
  async logout () { throw new NotConfiguredError('session') }
}

function defaultUserId (user: MultiauthUser): string {
  const id = (user as { id?: unknown }).id
  if (typeof id === 'string' && id.length > 0) return id
  if (typeof id === 'number' || typeof id === 'bigint') return String(id)
  throw new MultiauthOptionError('authSessions.login(): the user has no string or number "id"; pass session.userId(user) to say which id to store')
}

export function createSessionMethod (raw: unknown, ctx: MethodContext): AuthMethod & { core: SessionCore } {
  const [fastifyCookie, fastifySession] = loadPeers('the "session" option', ['@fastify/cookie', '@fastify/session'])
  const options = checkObject(raw, 'session') as unknown as SessionOptions
  checkKeys(options as unknown as Record<string, unknown>, OPTION_KEYS, 'session')
  checkFunction(options.findUser, 'session.findUser')
  checkFunction(options.userId, 'session.userId', false)
  checkString(options.cookieName, 'session.cookieName', false)
  checkString(options.domain, 'session.domain', false)
  const maxAge = durationMs(options.maxAge, 'session.maxAge') ?? 2 * HOUR
  const absoluteTimeout = durationMs(options.absoluteTimeout, 'session.absoluteTimeout') ?? DEFAULT_ABSOLUTE_TIMEOUT
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
  const { findUser } = options
  const userIdOf = options.userId ?? defaultUserId

  /** The id `login()` stores: `session.userId` under the one error path, and only ever a non-empty string. */
  function storedIdOf (user: MultiauthUser, request: FastifyRequest): string {
    let id: unknown
    try {
      id = userIdOf(user)
    } catch (err) {
      throw callbackError(err, 'session.userId', request)
    }
    if (typeof id !== 'string' || id.length === 0) throw callbackError(new TypeError('session.userId(user) must return a non-empty string'), 'session.userId', request)
    return id
  }
  const secure = options.secure ?? true
  // Final in setup() (the application's own @fastify/session names its cookie).
  let cookieName = options.cookieName ?? defaultCookieName(secure, options.domain)
  checkCookiePrefix(cookieName, secure, options.domain)
  /** Our store adapter, when @fastify/session is registered by us over the plugin's store. */
  let adapter: SessionStoreAdapter | undefined

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
      const record: SessionRecord = { u: storedIdOf(user, request), t: Date.now() }
      if (provider !== undefined) record.p = provider
      // A new id, and the old one destroyed in the store: whatever id the browser had
      // before (perhaps planted by an attacker) is worthless after login. A session begun in
      // this very request (no session cookie came with it) was never stored: no tombstone for it.
      const unsaved = adapter !== undefined && request.cookies?.[cookieName] === undefined ? request.session.sessionId : undefined
      if (unsaved !== undefined) adapter?.neverStored(unsaved)
      try {
        await request.session.regenerate()
      } finally {
        if (unsaved !== undefined) adapter?.forget(unsaved)
      }
      // Frozen: the in-process store may share it between requests instead of copying it.
      request.session.set(RECORD_KEY, Object.freeze(record))
      setRequestUser(request, user)
      // The user id is the one the session stores (`session.userId`): the same in session:logout and session:expired.
      if (events['session:login'].hasSubscribers) {
        events['session:login'].publish(provider === undefined
          ? { ...requestFields(request), userId: record.u }
          : { ...requestFields(request), userId: record.u, provider })
      }
      return record.u
    },
    async end (request) {
      // Read before destroy() drops it: a logout of a session nobody logged into reports nothing.
      const record = events['session:logout'].hasSubscribers ? core.extract(request) : undefined
      await destroy(request)
      if (record !== undefined) events['session:logout'].publish({ ...requestFields(request), userId: record.u })
    },
    extract (request) {
      const record = request.session?.get?.(RECORD_KEY)
      // A stored record of another shape (another writer, an old format) is no login.
      return typeof record?.u === 'string' && typeof record.t === 'number' && (record.p === undefined || typeof record.p === 'string') ? record : undefined
    },
    verify (record, request) {
      if (Date.now() - record.t > absoluteTimeout) return destroy(request).then(() => expired(record, request))
      if (trustedOrigins !== undefined && !SAFE_METHODS.has(request.method) && !sameOriginRequest(request, trustedOrigins)) {
        return CROSS_SITE
      }
      // No promise when `findUser` answers synchronously: the guard then needs none either.
      const user = findUser(record.u, request)
      return isThenable(user) ? Promise.resolve(user).then((value) => found(value, record, request)) : found(user, record, request)
    }
  }

  /** After the expired session was destroyed: reported, then refused. */
  function expired (record: SessionRecord, request: FastifyRequest): AuthFailure {
    if (events['session:expired'].hasSubscribers) events['session:expired'].publish({ ...requestFields(request), userId: record.u, reason: 'absolute' })
    return EXPIRED
  }

  function found (user: MultiauthUser | Falsy, record: SessionRecord, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthFailure> {
    if (!user) return destroy(request).then(() => USER_GONE)
    // `session` admits any session; the provider says how it began (an OAuth2 login, or none).
    return record.p === undefined ? { user, method: 'session' } : { user, method: 'session', provider: record.p }
  }

  const helpers: AuthSessions = {
    login: async (request, user) => { await core.start(request, user) },
    logout: async (request) => { await core.end(request) }
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
        store: options.store === undefined ? (adapter = new SessionStoreAdapter(ctx.store, maxAge, absoluteTimeout)) : boundSessionStore(options.store, ctx.timeoutMs),
        cookie: { httpOnly: true, secure, sameSite: 'lax', path: '/', domain: options.domain, maxAge }
      })
    }
    app.decorate('authSessions', helpers)
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

/**
 * The `oauth2` guard method: only a session begun by an OAuth2 login, with the same checks as
 * `session`, reported as `{ method: 'oauth2', provider }` (the guard method that admitted it).
 */
export function oauth2SessionMethod (core: SessionCore, setup: AuthMethod['setup'], securitySchemes?: AuthMethod['securitySchemes']): AuthMethod {
  return {
    name: 'oauth2',
    securitySchemes,
    extract: core.extract,
    verify (record: SessionRecord, request) {
      if (record.p === undefined) return NOT_OAUTH
      const outcome = core.verify(record, request)
      return isThenable(outcome) ? Promise.resolve(outcome).then(asOAuth2) : asOAuth2(outcome)
    },
    setup
  }
}

function asOAuth2 (outcome: AuthSuccess | AuthFailure): AuthSuccess | AuthFailure {
  return outcome instanceof AuthFailure ? outcome : { ...outcome, method: 'oauth2' }
}
