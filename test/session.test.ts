import { createHash } from 'node:crypto'
import t from 'tap'
import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import multiauth, { MemoryStore } from '../src/index.js'
import type { MultiauthOptions } from '../src/index.js'
import { cookieFrom, SESSION_SECRET, sessionApp } from './helpers/session-app.js'
import type { SessionTestUser } from './helpers/session-app.js'

const alice: SessionTestUser = { id: 'u1', name: 'Alice' }
const users = (): Map<string, SessionTestUser> => new Map([[alice.id, { ...alice }]])

t.test('login sets an HttpOnly, SameSite=Lax cookie with an expiry; the session authenticates as method "session"', async (t) => {
  const app = await sessionApp(users())
  const res = await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } })
  t.equal(res.statusCode, 200)
  const cookie = res.cookies.find((c) => c.name === 'sid')
  t.ok(cookie, 'cookie "sid" when secure is false')
  t.equal(cookie?.httpOnly, true)
  t.equal(cookie?.sameSite, 'Lax')
  t.equal(cookie?.path, '/')
  t.ok(cookie?.expires instanceof Date && cookie.expires.getTime() > Date.now() + 3_500_000, 'expires in about 2 hours (idle timeout)')
  const me = await app.inject({ url: '/me', headers: { cookie: cookieFrom(res, 'sid') } })
  t.equal(me.statusCode, 200)
  t.same(me.json(), { user: alice, method: 'session' })
  t.equal((await app.inject('/me')).statusCode, 401, 'no cookie → 401')
})

t.test('by default the cookie is Secure and __Host- prefixed; no cookie is sent over plain HTTP', async (t) => {
  const app = await sessionApp(users(), { session: { secure: undefined }, server: { trustProxy: true } })
  const https = await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' }, headers: { 'x-forwarded-proto': 'https' } })
  const cookie = https.cookies.find((c) => c.name === '__Host-sid')
  t.equal(cookie?.secure, true)
  t.equal(cookie?.path, '/')
  t.equal(cookie?.domain, undefined)
  const http = await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } })
  t.equal(http.cookies.length, 0, 'a Secure session cookie is never sent over HTTP')
})

t.test('login regenerates the session id: an id set before login does not authenticate after it', async (t) => {
  const app = await sessionApp(users())
  // An anonymous session that exists in the store (e.g. a cart), or one an attacker planted.
  const before = await app.inject({ method: 'POST', url: '/cart' })
  const oldCookie = cookieFrom(before, 'sid')
  t.ok(oldCookie, 'a pre-login session exists')
  const res = await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' }, headers: { cookie: oldCookie } })
  const newCookie = cookieFrom(res, 'sid')
  t.ok(newCookie)
  t.not(newCookie, oldCookie, 'the session id before and after login differ')
  t.equal((await app.inject({ url: '/me', headers: { cookie: oldCookie } })).statusCode, 401, 'the pre-login id does not authenticate')
  t.equal((await app.inject({ url: '/me', headers: { cookie: newCookie } })).statusCode, 200)
})

t.test('the session stores only the user id (and login time), never the user object', async (t) => {
  const store = new MemoryStore()
  const app = await sessionApp(users(), { plugin: { store } })
  t.teardown(() => app.close())
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid') as string
  // The store key: "sess:" + SHA-256 of the unsigned session id (SessionStoreAdapter).
  const signed = decodeURIComponent(cookie.slice(4))
  const raw = await store.get('sess:' + createHash('sha256').update(signed.slice(0, signed.lastIndexOf('.'))).digest('base64url'))
  t.type(raw, 'string', 'the session is in the store')
  const record = JSON.parse(raw as string)
  t.same(Object.keys(record.multiauth).sort(), ['t', 'u'])
  t.equal(record.multiauth.u, 'u1')
  t.notOk((raw as string).includes('Alice'), 'the user object is not stored')
})

t.test('logout destroys the session and clears the cookie; the old cookie no longer authenticates', async (t) => {
  const app = await sessionApp(users())
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
  const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
  t.equal(out.statusCode, 200)
  const cleared = out.cookies.find((c) => c.name === 'sid')
  t.ok(cleared !== undefined && (cleared.maxAge === 0 || (cleared.expires?.getTime() ?? Infinity) <= Date.now()), 'cookie cleared')
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 401)
})

t.test('a deleted or disabled user is logged out at the next request', async (t) => {
  const map = users()
  const app = await sessionApp(map)
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
  map.delete('u1')
  const gone = await app.inject({ url: '/me', headers: { cookie } })
  t.equal(gone.statusCode, 401)
  t.ok(gone.cookies.some((c) => c.name === 'sid' && c.value === ''), 'the cookie is cleared')
  map.set('u1', { ...alice })
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'the session was destroyed, not merely refused')
})

t.test('absolute timeout ends a session however active it is (fake clock)', async (t) => {
  const realNow = Date.now
  let now = realNow()
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  const app = await sessionApp(users(), { session: { maxAge: 3_600_000, absoluteTimeout: 5 * 3_600_000 } })
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
  for (let step = 1; step <= 6; step++) {
    now += 3_000_000 // 50 minutes: always within the idle timeout
    t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, `active ${step * 50} minutes after login`)
  }
  now += 3_000_000
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, '350 minutes after login: past the 5-hour absolute timeout')
})

t.test('idle timeout: the session expires when unused for maxAge (fake clock)', async (t) => {
  const realNow = Date.now
  let now = realNow()
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  const store = new MemoryStore({ now: () => now })
  const app = await sessionApp(users(), { plugin: { store }, session: { maxAge: 60_000 } })
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
  now += 50_000
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, 'used within maxAge (rolling)')
  now += 50_000
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, '100 s after login, 50 s after last use')
  now += 61_000
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'idle for more than maxAge')
})

t.test('the stored entry is renewed once a tenth of the idle timeout has passed, or when the request changed the session (fake clock)', async (t) => {
  const realNow = Date.now
  let now = realNow()
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  const store = new MemoryStore({ now: () => now })
  const app = await sessionApp(users(), { plugin: { store }, session: { maxAge: 100_000 } })
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid') as string
  const sessionId = decodeURIComponent(cookie.slice('sid='.length)).split('.')[0] as string
  const key = `sess:${createHash('sha256').update(sessionId).digest('base64url')}`
  const stored = async (): Promise<{ expires: number, cart?: unknown }> => {
    const json = JSON.parse(await store.get(key) as string)
    return { expires: Date.parse(json.cookie.expires), cart: json.cart }
  }
  const loggedInAt = now
  t.equal((await stored()).expires, loggedInAt + 100_000, 'login writes the entry')

  now += 9_000
  const steady = await app.inject({ url: '/me', headers: { cookie } })
  t.equal(steady.statusCode, 200)
  t.equal((await stored()).expires, loggedInAt + 100_000, '9 s later (under a tenth of 100 s), nothing is written')
  const resent = steady.cookies.find((c) => c.name === 'sid')
  t.equal(resent?.value, decodeURIComponent(cookie.slice('sid='.length)), 'the browser\'s cookie is still renewed: the same value')
  t.equal(resent?.expires?.getTime(), Math.floor((now + 100_000) / 1000) * 1000, '…with the expiry pushed forward')

  now += 2_000
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
  const renewedAt = now
  t.equal((await stored()).expires, renewedAt + 100_000, '11 s after the last write, the entry is renewed')

  now += 1_000
  t.equal((await app.inject({ method: 'POST', url: '/cart', headers: { cookie } })).statusCode, 200)
  t.same(await stored(), { expires: now + 100_000, cart: ['book'] }, 'a request that changed the session writes it at once')
  const changedAt = now

  // The idle timeout is never longer than maxAge: a request that wrote nothing does not extend it,
  // so a session can end up to a tenth of maxAge sooner than the last request plus maxAge.
  now += 9_000
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, 'used 9 s after the last write (nothing written)')
  now = changedAt + 100_001
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'idle past maxAge since the last write: expired, 91 s after the last request')
})

t.test('option checks at registration', async (t) => {
  const register = async (options: MultiauthOptions): Promise<void> => { await Fastify().register(multiauth, options).ready() }
  const findUser = (): null => null
  await t.rejects(register({ session: { findUser } }), /session.secret is required/)
  await t.rejects(register({ session: { findUser, secret: 'short' } }), /at least 32/)
  await t.rejects(register({ session: { secret: SESSION_SECRET } as never }), /session.findUser must be a function/)
  await t.rejects(register({ session: { findUser, secret: SESSION_SECRET, secure: 'yes' as never } }), /secure/)
  await t.rejects(register({ session: { findUser, secret: SESSION_SECRET, csrf: { trustedOrigins: ['https://a.example/path'] } } }), /not an origin/)
  await t.rejects(register({ session: { findUser, secret: SESSION_SECRET, nope: 1 } as never }), /unknown option session.nope/)
  // The 0.x name is gone, not an alias: it is refused like any unknown option.
  await t.rejects(register({ session: { findUser, secret: SESSION_SECRET, lookup: findUser } as never }), /unknown option session.lookup/)
})

t.test('app.authSessions.login() without the session method is a 500, not a silent pass', async (t) => {
  const app = Fastify()
  await app.register(multiauth, { apiKey: { verify: () => null } })
  app.post('/login', async (request) => { await app.authSessions.login(request, alice); return 'no' })
  const res = await app.inject({ method: 'POST', url: '/login' })
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'FST_MULTIAUTH_NOT_CONFIGURED')
})

t.test('an application that registered @fastify/session itself keeps its registration', async (t) => {
  const map = users()
  const app = Fastify()
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret: SESSION_SECRET, cookieName: 'appsid', saveUninitialized: false, cookie: { secure: false } })
  await app.register(multiauth, { session: { findUser: (id) => map.get(id) ?? null, cookieName: 'appsid' } })
  app.post('/login', async (request) => { await app.authSessions.login(request, alice); return 'ok' })
  app.get('/me', { onRequest: app.authGuard(['session']) }, async (request) => request.auth?.user ?? null)
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login' }), 'appsid')
  t.ok(cookie)
  t.same((await app.inject({ url: '/me', headers: { cookie } })).json(), alice)

  const again = Fastify()
  await again.register(fastifyCookie)
  await again.register(fastifySession, { secret: SESSION_SECRET })
  await t.rejects(async () => { await again.register(multiauth, { session: { findUser: () => null, secret: SESSION_SECRET } }).ready() }, /already registered/)
})
