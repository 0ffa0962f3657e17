// Session cookie name, flags, secret rotation and the clearing cookie (issue 18, findings 7 and 8).
// RFC 6265bis §4.1.3: a __Host- cookie is accepted only with Secure, Path=/ and no Domain, a
// __Secure- cookie only with Secure; a cookie is replaced (cleared) only by one with the same
// name, Domain and Path, and a browser ignores a __Host- "clear" that lacks Secure.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import fastifyCookie, { Signer } from '@fastify/cookie'
import fastifySession from '@fastify/session'
import multiauth, { MemoryStore } from '../../src/index.js'
import type { SessionOptions } from '../../src/index.js'
import { sessionApp } from '../helpers/session-app.js'
import type { SessionTestUser } from '../helpers/session-app.js'

const OLD_SECRET = 'the-old-session-secret-of-32-characters!'
const NEW_SECRET = 'the-new-session-secret-of-32-characters!'
const HTTPS = { 'x-forwarded-proto': 'https' }
const users = (): Map<string, SessionTestUser> => new Map([['u1', { id: 'u1', name: 'Alice' }]])

type SetCookie = LightMyRequestResponse['cookies'][number]

function setCookie (res: LightMyRequestResponse, name: string): SetCookie | undefined {
  return res.cookies.find((c) => c.name === name)
}

/** The attributes that decide which stored cookie a Set-Cookie replaces, and whether a browser accepts it. */
function attributes (c: SetCookie | undefined): Record<string, unknown> {
  return { secure: c?.secure ?? false, path: c?.path, domain: c?.domain, sameSite: c?.sameSite, httpOnly: c?.httpOnly ?? false }
}

function isClearing (c: SetCookie | undefined): boolean {
  return c !== undefined && c.value === '' && (c.maxAge === 0 || (c.expires?.getTime() ?? Infinity) <= Date.now())
}

async function secureApp (session: Partial<SessionOptions>, store: MemoryStore = new MemoryStore()): Promise<FastifyInstance> {
  const app = await sessionApp(users(), { session: { secure: undefined, ...session }, plugin: { store }, server: { trustProxy: true } })
  t.teardown(() => app.close())
  return app
}

t.test('finding 7: cookie names and flags are consistent, or registration fails', async (t) => {
  const register = async (session: Partial<SessionOptions>): Promise<void> => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(multiauth, { session: { secret: NEW_SECRET, findUser: () => null, ...session } })
    await app.ready()
  }
  // Failed before the fix: each of these registered, and the browser then dropped the cookie.
  await t.rejects(register({ cookieName: '__Host-sid', secure: false }), /__Host- prefix.*needs session.secure: true/)
  await t.rejects(register({ cookieName: '__Host-sid', secure: 'auto' }), /__Host- prefix.*needs session.secure: true/)
  await t.rejects(register({ cookieName: '__Secure-sid', secure: false }), /__Secure- prefix/)
  await t.rejects(register({ cookieName: '__host-sid', secure: false }), /__Host- prefix/, 'browsers match the prefix case-insensitively')
  await t.rejects(register({ cookieName: '__Host-sid', domain: 'example.com' }), /cannot have a Domain/)
  await register({ cookieName: '__Secure-sid', domain: 'example.com' })
  await register({ cookieName: 'sid', secure: 'auto' })
})

// Failed before the fix: with a domain the default name was "sid", without any prefix.
t.test('finding 7: secure with a domain defaults to __Secure-sid (the prefix the Domain allows)', async (t) => {
  const app = await secureApp({ domain: 'example.com' })
  const res = await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' }, headers: HTTPS })
  const cookie = setCookie(res, '__Secure-sid')
  t.ok(cookie, res.headers['set-cookie'] as string)
  t.same(attributes(cookie), { secure: true, path: '/', domain: 'example.com', sameSite: 'Lax', httpOnly: true })
})

t.test('finding 7: secure "auto" keeps an unprefixed name; Secure follows the request, so HTTP never gets a prefixed cookie a browser would drop', async (t) => {
  const app = await secureApp({ secure: 'auto' })
  const overHttps = setCookie(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' }, headers: HTTPS }), 'sid')
  t.equal(overHttps?.secure, true)
  const overHttp = setCookie(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
  t.ok(overHttp !== undefined && overHttp.secure !== true)
})

/** Logs in on `before`, then sends that cookie to `after` (same store, rotated secrets). */
async function rotate (t: Test, session: Partial<SessionOptions>, name: string, headers: Record<string, string>) {
  const store = new MemoryStore()
  const before = await secureApp({ ...session, secret: OLD_SECRET }, store)
  const during = await secureApp({ ...session, secret: [NEW_SECRET, OLD_SECRET] }, store)
  const after = await secureApp({ ...session, secret: NEW_SECRET }, store)
  const oldValue = setCookie(await before.inject({ method: 'POST', url: '/login', payload: { id: 'u1' }, headers }), name)?.value as string
  t.ok(new Signer(OLD_SECRET).unsign(oldValue).valid, 'logged in with a cookie signed by the old secret')
  const res = await during.inject({ url: '/me', headers: { ...headers, cookie: `${name}=${oldValue}` } })
  t.equal(res.statusCode, 200, 'the old secret still verifies during the rotation')
  return { res, oldValue, after }
}
for (const [label, session, name, headers] of [
  ['__Host-sid over HTTPS', {}, '__Host-sid', HTTPS],
  ['sid (secure: false)', { secure: false }, 'sid', {}]
] as Array<[string, Partial<SessionOptions>, string, Record<string, string>]>) {
  // Failed before the fix: the response carried no re-signed cookie (for "sid" it even cleared the
  // cookie, logging the user out at once), so once the old secret was retired the session was gone.
  t.test(`finding 8: a cookie signed with an older secret is re-signed with the first one and keeps working after the old secret is retired (${label})`, async (t) => {
    const { res, oldValue, after } = await rotate(t, session, name, headers)
    const renewed = setCookie(res, name)
    t.ok(renewed !== undefined && !isClearing(renewed), 'the response sets the cookie again, not a clearing cookie')
    const unsigned = new Signer([NEW_SECRET]).unsign(renewed?.value ?? '')
    t.ok(unsigned.valid, 'signed with the new (first) secret')
    t.equal(unsigned.value, new Signer(OLD_SECRET).unsign(oldValue).value, 'the same session id')
    t.equal(res.cookies.filter((c) => c.name === name).length, 1, 'one Set-Cookie for the session cookie')
    const me = await after.inject({ url: '/me', headers: { ...headers, cookie: `${name}=${renewed?.value ?? ''}` } })
    t.equal(me.statusCode, 200, 'still logged in after the old secret is gone')
    t.equal((await after.inject({ url: '/me', headers: { ...headers, cookie: `${name}=${oldValue}` } })).statusCode, 401, 'the old signature alone no longer verifies')
  })
}

t.test('finding 8: a cookie signed with the current secret is renewed as before (rolling), unchanged', async (t) => {
  const app = await secureApp({ secret: [NEW_SECRET, OLD_SECRET] })
  const value = setCookie(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' }, headers: HTTPS }), '__Host-sid')?.value as string
  const res = await app.inject({ url: '/me', headers: { ...HTTPS, cookie: `__Host-sid=${value}` } })
  t.equal(res.statusCode, 200)
  t.equal(setCookie(res, '__Host-sid')?.value, value)
})

t.test('finding 8: an application\'s own @fastify/session with a secret list gets the same renewal', async (t) => {
  // A store that keeps sessions as JSON, as every shared store does (connect-redis and the like).
  // @fastify/session's own MemoryStore keeps the Session object, signed id included, so there the
  // old signature is kept (docs/sessions.md); it is not meant for production.
  const rows = new Map<string, string>()
  const store = {
    get (id: string, done: (err: null, session?: any) => void) { const row = rows.get(id); done(null, row === undefined ? null : JSON.parse(row)) },
    set (id: string, session: unknown, done: () => void) { rows.set(id, JSON.stringify(session)); done() },
    destroy (id: string, done: () => void) { rows.delete(id); done() }
  }
  const build = async (secret: string | string[]): Promise<FastifyInstance> => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(fastifyCookie)
    await app.register(fastifySession, { secret, cookieName: 'appsid', saveUninitialized: false, store, cookie: { secure: false, sameSite: 'lax' } })
    await app.register(multiauth, { session: { findUser: (id) => ({ id }), cookieName: 'appsid' } })
    app.post('/login', async (request) => { await app.authSessions.login(request, { id: 'u1' }); return 'ok' })
    app.get('/me', { onRequest: app.authGuard(['session']) }, async (request) => request.auth?.user ?? null)
    return app
  }
  const oldValue = setCookie(await (await build(OLD_SECRET)).inject({ method: 'POST', url: '/login' }), 'appsid')?.value as string
  const res = await (await build([NEW_SECRET, OLD_SECRET])).inject({ url: '/me', headers: { cookie: `appsid=${oldValue}` } })
  t.equal(res.statusCode, 200)
  const renewed = setCookie(res, 'appsid')
  t.ok(new Signer(NEW_SECRET).unsign(renewed?.value ?? '').valid, 'renewed with the new secret')
  t.equal((await (await build(NEW_SECRET)).inject({ url: '/me', headers: { cookie: `appsid=${renewed?.value ?? ''}` } })).statusCode, 200)
})

/** Logs in, logs out; the login's and the logout's Set-Cookie for `name`. */
async function loginLogout (t: Test, app: FastifyInstance, name: string, headers: Record<string, string>): Promise<{ set: SetCookie | undefined, cleared: SetCookie | undefined }> {
  const loggedIn = await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' }, headers })
  const set = setCookie(loggedIn, name)
  const out = await app.inject({ method: 'POST', url: '/logout', headers: { ...headers, 'sec-fetch-site': 'same-origin', cookie: `${name}=${set?.value ?? ''}` } })
  t.equal(out.statusCode, 200)
  return { set, cleared: setCookie(out, name) }
}

for (const [label, session, name, headers] of [
  ['default (__Host-sid)', {}, '__Host-sid', HTTPS],
  ['with a domain (__Secure-sid)', { domain: 'example.com' }, '__Secure-sid', HTTPS],
  ['secure "auto" over HTTPS', { secure: 'auto' }, 'sid', HTTPS],
  ['secure "auto" over HTTP', { secure: 'auto' }, 'sid', {}],
  ['secure false', { secure: false }, 'sid', {}]
] as Array<[string, Partial<SessionOptions>, string, Record<string, string>]>) {
  // Failed before the fix for 'auto' over HTTPS: the clearing cookie lacked Secure.
  t.test(`finding 8: logout clears the cookie with exactly the attributes it was set with: ${label}`, async (t) => {
    const app = await secureApp(session)
    const { set, cleared } = await loginLogout(t, app, name, headers)
    t.ok(set !== undefined && !isClearing(set), 'logged in')
    t.ok(isClearing(cleared), 'cleared')
    t.same(attributes(cleared), attributes(set))
  })
}

// Failed before the fix: the clearing cookie for an application's own registration had no Secure
// (a browser ignores it for a __Host- cookie, so logout left the cookie in place) and SameSite=Lax.
t.test('finding 8: logout with the application\'s own @fastify/session clears with its attributes (__Host-, SameSite=Strict)', async (t) => {
  const app = Fastify({ trustProxy: true })
  t.teardown(() => app.close())
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret: NEW_SECRET, cookieName: '__Host-app', saveUninitialized: false, cookie: { secure: true, sameSite: 'strict' } })
  await app.register(multiauth, { session: { findUser: (id) => ({ id }), cookieName: '__Host-app' } })
  app.post('/login', async (request) => { await app.authSessions.login(request, { id: 'u1' }); return 'ok' })
  app.post('/logout', async (request) => { await app.authSessions.logout(request); return { ok: true } })
  const { set, cleared } = await loginLogout(t, app, '__Host-app', HTTPS)
  t.same(attributes(set), { secure: true, path: '/', domain: undefined, sameSite: 'Strict', httpOnly: true })
  t.ok(isClearing(cleared))
  t.same(attributes(cleared), attributes(set))
})

t.test('an application\'s @fastify/session with httpOnly: false is a registration error', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret: NEW_SECRET, saveUninitialized: false, cookie: { httpOnly: false, sameSite: 'lax' } })
  await t.rejects(async () => { await app.register(multiauth, { session: { findUser: () => null } }).ready() }, /httpOnly: false/)
})
