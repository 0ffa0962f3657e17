// Attack cases against cookie sessions (OWASP ASVS 4.0.3 V3). Fixation, logout and
// stolen-cookie-after-logout, timeouts and CSRF are in test/session.test.ts,
// test/session-redis.test.ts and test/session-csrf.test.ts; this file adds cookies that
// come from elsewhere: other names (a sibling subdomain or path cannot set __Host-),
// other applications' secrets, forged or store-dumped ids, duplicates.
import t from 'tap'
import { createHash } from 'node:crypto'
import { MemoryStore } from '../../src/index.js'
import { cookieFrom, sessionApp } from '../helpers/session-app.js'
import type { SessionTestUser } from '../helpers/session-app.js'

const users = (): Map<string, SessionTestUser> => new Map([['u1', { id: 'u1', name: 'Alice' }], ['u2', { id: 'u2', name: 'Mallory' }]])
const HTTPS = { 'x-forwarded-proto': 'https' }

t.test('[ASVS 4.0.3 V3.4.4 __Host- prefix, RFC 6265bis §4.1.3.2] a valid session value under another cookie name (as a sibling subdomain or another path could set) is ignored', async (t) => {
  const app = await sessionApp(users(), { session: { secure: undefined }, server: { trustProxy: true } })
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' }, headers: HTTPS })
  const cookie = res.cookies.find((c) => c.name === '__Host-sid')
  t.ok(cookie !== undefined && cookie.secure === true && cookie.path === '/' && cookie.domain === undefined, 'issued as __Host-sid: Secure, Path=/, no Domain')
  const value = cookie?.value as string
  t.equal((await app.inject({ url: '/me', headers: { ...HTTPS, cookie: `__Host-sid=${value}` } })).statusCode, 200, 'control')
  for (const name of ['sid', '__Secure-sid', '__host-sid', 'sessionId', '__Host-SID']) {
    const r = await app.inject({ url: '/me', headers: { ...HTTPS, cookie: `${name}=${value}` } })
    t.equal(r.statusCode, 401, `the value as "${name}" → 401`)
  }
})

t.test('[ASVS 4.0.3 V3.2.2, V3.5.2] a cookie signed by another application (another secret), forged or unsigned → 401, never 500', async (t) => {
  const store = new MemoryStore()
  const app = await sessionApp(users(), { plugin: { store } })
  t.teardown(() => app.close())
  const other = await sessionApp(users(), { session: { secret: 'another-application-secret-of-32-chars!!' }, plugin: { store } })
  t.teardown(() => other.close())
  const own = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid') as string
  const foreign = cookieFrom(await other.inject({ method: 'POST', url: '/login', payload: { id: 'u2' } }), 'sid') as string
  t.equal((await app.inject({ url: '/me', headers: { cookie: own } })).statusCode, 200, 'control')
  t.equal((await app.inject({ url: '/me', headers: { cookie: foreign } })).statusCode, 401, 'a session of another app sharing the store, signed with its secret → 401')
  const raw = decodeURIComponent(own.slice(4))
  const id = raw.slice(0, raw.lastIndexOf('.'))
  const sig = raw.slice(raw.lastIndexOf('.') + 1)
  const flipped = sig.slice(0, -2) + (sig.at(-2) === 'A' ? 'B' : 'A') + sig.at(-1)
  const forged = [
    `sid=${encodeURIComponent(id)}`, // the id without its signature
    `sid=${encodeURIComponent(`${id}.${flipped}`)}`, // a flipped signature
    `sid=${encodeURIComponent(`${id}.`)}`,
    `sid=${encodeURIComponent(createHash('sha256').update(id).digest('base64url'))}`, // what a dump of the store holds
    `sid=${encodeURIComponent(`sess:${createHash('sha256').update(id).digest('base64url')}.${sig}`)}`,
    'sid=%E0%A4%A', 'sid=' + 'a'.repeat(4000), 'sid=.', 'sid==', 'sid', '=; ; sid'
  ]
  for (const cookie of forged) {
    const r = await app.inject({ url: '/me', headers: { cookie } })
    t.equal(r.statusCode, 401, `${cookie.slice(0, 60)} → 401`)
  }
})

t.test('[ASVS 4.0.3 V3.2.1, RFC 6265 §5.4] duplicate session cookies (cookie tossing) never combine into a login: garbage first → 401, no 500', async (t) => {
  const app = await sessionApp(users())
  t.teardown(() => app.close())
  const own = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid') as string
  const statuses = []
  for (const cookie of [`sid=garbage; ${own}`, `sid=; ${own}`, `${own}; ${own}`, `${own}; sid=garbage`]) {
    statuses.push((await app.inject({ url: '/me', headers: { cookie } })).statusCode)
  }
  t.same(statuses, [401, 401, 200, 200], 'the first cookie of the name is the one read, exactly as browsers send the more specific one first')
})

t.test('[ASVS 4.0.3 V3.3.1] a cookie stolen before logout is refused after it, also when replayed with a fresh pre-login cookie jar', async (t) => {
  const app = await sessionApp(users())
  t.teardown(() => app.close())
  const stolen = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid') as string
  t.equal((await app.inject({ url: '/me', headers: { cookie: stolen } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie: stolen } })).statusCode, 200)
  t.equal((await app.inject({ url: '/me', headers: { cookie: stolen } })).statusCode, 401, 'replayed after logout')
  // The attacker writes to the dead id (an anonymous session under the same id must not be recreated as a login).
  await app.inject({ method: 'POST', url: '/cart', headers: { cookie: stolen } })
  t.equal((await app.inject({ url: '/me', headers: { cookie: stolen } })).statusCode, 401, 'still refused after writing to it')
})
