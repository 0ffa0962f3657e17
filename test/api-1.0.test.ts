// The 1.0 API's new behaviours (issue 19) that no older test covers: durations on every duration
// option, app.authTokens / authSessions / authCache always present and failing closed,
// callbackTimeout, the split 401 codes, the error classes' default messages, the store checks
// and store.close(), the RedisStore brand, rateLimit.perCredential (off unless given), and
// request.auth.method for a session begun by an OAuth2 login.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import t from 'tap'
import type { Test } from 'tap'
import argon2 from 'argon2'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import * as api from '../src/index.js'
import multiauth, {
  generateApiKey, hashPassword, MemoryStore, MultiauthOptionError, RedisStore, rotateApiKey
} from '../src/index.js'
import type { ApiKeyRecord, Duration, MultiauthOptions, MultiauthStore, MultiauthUser, TokenOptions } from '../src/index.js'
import { isRedisStore } from '../src/stores/redis.js'
import { basicHeader, buildApp } from './helpers/app.js'
import { CookieJar, runCodeFlow, startOidcProvider } from './helpers/oidc-provider.js'
import { freePort } from './helpers/redis.js'
import { eachTopology } from './helpers/redis-topology.js'
import { cookieFrom, sessionApp } from './helpers/session-app.js'
import { SECRET } from './helpers/tokens.js'

const SESSION_SECRET = 'a-session-secret-of-at-least-32-characters'
const HOUR = 3_600_000
/** The start of a whole second, so JWT `iat`/`exp` (seconds) and cookie dates land exactly. */
const T0 = 1_900_000_000_000

const realNow = Date.now

/**
 * Pins Date.now at T0 (the real one is back at teardown) before the app exists, so the plugin's
 * clocks (the MemoryStore's, the caches', fast-jwt's, @fastify/session's) all read it: no sleeping.
 */
function pinClock (t: Test): { set: (ms: number) => void } {
  let now = T0
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  return { set: (ms) => { now = ms } }
}

function payloadOf (jwt: string): Record<string, number> {
  return JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString())
}

const findUser = (claims: { sub: string }): MultiauthUser => ({ id: claims.sub })
const verifyAnn = (username: string, password: string): MultiauthUser | null => username === 'ann' && password === 'pw-ann' ? { id: 'ann' } : null
const optionError = { code: 'FST_MULTIAUTH_INVALID_OPTION' }

// ---- durations ----------------------------------------------------------------------------

t.test('token.expiresIn: ms or a string; issue() and the routes report whole seconds', async (t) => {
  for (const [expiresIn, seconds] of [['15m', 900], [900_000, 900], ['2 hours', 7200], ['1s', 1], [3_600_000, 3600]] as Array<[Duration, number]>) {
    const app = await buildApp({ basic: { verify: verifyAnn }, token: { secret: SECRET, findUser, expiresIn, routes: true } })
    t.teardown(() => app.close())
    const issued = await app.authTokens.issue({ id: 'ann' })
    t.equal(issued.expiresIn, seconds, `${JSON.stringify(expiresIn)}: issue() says ${seconds} s`)
    const { iat, exp } = payloadOf(issued.accessToken)
    t.equal((exp as number) - (iat as number), seconds, `${JSON.stringify(expiresIn)}: exp - iat`)
    const res = await app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader('ann', 'pw-ann') } })
    t.equal(res.json().expires_in, seconds, `${JSON.stringify(expiresIn)}: expires_in on the wire is seconds`)
    t.equal(res.json().expiration, seconds)
  }
})

t.test('token.refresh.expiresIn: ms or a string, counted from the rotation (pinned clock)', async (t) => {
  for (const expiresIn of ['2h', 2 * HOUR] as Duration[]) {
    const clock = pinClock(t)
    const app = await buildApp({
      basic: { verify: verifyAnn },
      rateLimit: false,
      token: { secret: SECRET, findUser, routes: true, refresh: { expiresIn } }
    })
    const first = await app.authTokens.issue({ id: 'ann' })
    const second = await app.authTokens.issue({ id: 'ann' })
    const refresh = async (refreshToken: string | undefined) => await app.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: refreshToken } })
    clock.set(T0 + 2 * HOUR - 1000)
    t.equal((await refresh(first.refreshToken)).statusCode, 200, `${JSON.stringify(expiresIn)}: valid one second before the end`)
    clock.set(T0 + 2 * HOUR + 1000)
    const late = await refresh(second.refreshToken)
    t.equal(late.statusCode, 400, `${JSON.stringify(expiresIn)}: expired one second after`)
    t.equal(late.json().error, 'invalid_grant')
    await app.close()
  }
})

t.test('token.clockTolerance: ms or a string, 0 allowed (pinned clock)', async (t) => {
  // '0s' failed before the fix in src/core/durations.ts: @lukeed/ms reads a zero as nothing.
  for (const [clockTolerance, status] of [['30s', 200], [30_000, 200], ['10s', 401], [0, 401], ['0s', 401]] as Array<[Duration, number]>) {
    const clock = pinClock(t)
    const app = await buildApp({ token: { secret: SECRET, findUser, expiresIn: '1s', clockTolerance } })
    app.get('/me', { onRequest: app.authGuard(['token']) }, async () => 'ok')
    const { accessToken } = await app.authTokens.issue({ id: 'ann' })
    // 20 seconds after exp: inside a 30 s tolerance, outside a 10 s one.
    clock.set((payloadOf(accessToken).exp as number) * 1000 + 20_000)
    t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${accessToken}` } })).statusCode, status, `clockTolerance ${JSON.stringify(clockTolerance)}`)
    await app.close()
  }
  await t.rejects(buildApp({ token: { secret: SECRET, findUser, clockTolerance: '6m' } }), { ...optionError, message: /token\.clockTolerance must be at most 300000 ms/ })
})

t.test('session.maxAge: ms or a string, the cookie\'s expiry (pinned clock)', async (t) => {
  for (const maxAge of ['30m', 1_800_000, '30 minutes'] as Duration[]) {
    pinClock(t)
    const app = await sessionApp(new Map([['ann', { id: 'ann', name: 'Ann' }]]), { session: { maxAge } })
    const res = await app.inject({ method: 'POST', url: '/login', payload: { id: 'ann' } })
    const cookie = res.cookies.find((c) => c.name === 'sid')
    t.equal((cookie?.expires as Date | undefined)?.getTime(), T0 + 1_800_000, `${JSON.stringify(maxAge)}: Expires is 30 minutes ahead`)
    await app.close()
  }
})

t.test('session.absoluteTimeout: ms or a string (pinned clock)', async (t) => {
  for (const absoluteTimeout of ['1h', HOUR] as Duration[]) {
    const clock = pinClock(t)
    const app = await sessionApp(new Map([['ann', { id: 'ann', name: 'Ann' }]]), { session: { absoluteTimeout } })
    const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'ann' } }), 'sid') as string
    clock.set(T0 + HOUR - 1000)
    t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, `${JSON.stringify(absoluteTimeout)}: one second before`)
    clock.set(T0 + HOUR + 1000)
    t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, `${JSON.stringify(absoluteTimeout)}: one second after`)
    await app.close()
  }
})

t.test('oauth2.httpTimeout: ms or a string bounds discovery', async (t) => {
  // A provider whose discovery answers 500 after one second. The abort and the answer are timers of
  // this one process, so their order is fixed: a 200 ms bound always fires first, an hour never does.
  const server: Server = createServer((_req, res) => { setTimeout(() => { res.statusCode = 500; res.end() }, 1000) })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const register = async (httpTimeout: Duration): Promise<FastifyInstance> => await buildApp({
    session: { secret: SESSION_SECRET, secure: false, findUser: (id) => ({ id }) },
    oauth2: {
      baseUrl: 'http://localhost:3000',
      providers: { slow: { issuer: `http://127.0.0.1:${port}`, clientId: 'c', clientSecret: 's' } },
      findUser: () => null,
      httpTimeout
    }
  })
  for (const short of ['200ms', 200] as Duration[]) {
    await t.rejects(register(short), { message: /oauth2\.providers\.slow: OpenID Connect discovery failed \(.*timeout/i }, `${JSON.stringify(short)}: aborted`)
  }
  for (const long of ['1 hour', HOUR] as Duration[]) {
    await t.rejects(register(long), { message: /discovery failed \(.*answered 500\)/ }, `${JSON.stringify(long)}: waited for the answer`)
  }
})

t.test('rateLimit timeWindow: ms or a string, on every budget', async (t) => {
  const key = generateApiKey({ prefix: 'ak', environment: 'live' })
  const records = new Map<string, ApiKeyRecord<MultiauthUser>>([[key.id, { user: { id: 'svc' }, hash: key.hash }]])
  // What the window means, read from the headers: seconds left, between half the window and all of it.
  const inWindow = (t: Test, value: unknown, seconds: number, label: string): void => {
    t.ok(Number(value) > seconds / 2 && Number(value) <= seconds, `${label}: ${String(value)} s is within a ${seconds} s window`)
  }
  for (const timeWindow of ['2m', 120_000, '2 minutes'] as Duration[]) {
    const app = await buildApp({ apiKey: { findKey: (id) => records.get(id) }, rateLimit: { perCredential: { max: 1, timeWindow } } })
    app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
    const first = await app.inject({ url: '/', headers: { 'x-api-key': key.key } })
    t.equal(first.statusCode, 200)
    inWindow(t, first.headers['ratelimit-reset'], 120, `perCredential ${JSON.stringify(timeWindow)}`)
    const second = await app.inject({ url: '/', headers: { 'x-api-key': key.key } })
    t.equal(second.statusCode, 429)
    inWindow(t, second.headers['retry-after'], 120, `perCredential ${JSON.stringify(timeWindow)}: Retry-After`)
    await app.close()
  }
  for (const timeWindow of ['10m', 600_000] as Duration[]) {
    const app = await buildApp({ apiKey: { findKey: (id) => records.get(id) }, rateLimit: { failuresPerIp: { max: 1, timeWindow } } })
    app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
    let limited
    for (let i = 0; i < 5 && limited === undefined; i++) {
      const res = await app.inject({ url: '/', headers: { 'x-api-key': 'wrong' } })
      if (res.statusCode === 429) limited = res
    }
    t.ok(limited, `failuresPerIp ${JSON.stringify(timeWindow)}: spent`)
    inWindow(t, limited?.headers['retry-after'], 600, `failuresPerIp ${JSON.stringify(timeWindow)}: Retry-After`)
    await app.close()
  }
  for (const timeWindow of ['15m', 900_000] as Duration[]) {
    const app = await buildApp({ basic: { verify: verifyAnn }, rateLimit: { failuresPerUser: { max: 1, timeWindow }, failuresPerIp: false } })
    app.get('/', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
    let limited
    for (let i = 0; i < 5 && limited === undefined; i++) {
      const res = await app.inject({ url: '/', remoteAddress: `10.0.0.${i + 1}`, headers: { authorization: basicHeader('ann', 'wrong') } })
      if (res.statusCode === 429) limited = res
    }
    t.ok(limited, `failuresPerUser ${JSON.stringify(timeWindow)}: spent`)
    inWindow(t, limited?.headers['retry-after'], 900, `failuresPerUser ${JSON.stringify(timeWindow)}: Retry-After`)
    await app.close()
  }
})

t.test('basic.cache.ttl: ms or a string (pinned clock, real argon2 counted)', async (t) => {
  const record = { user: { id: 'ann' }, passwordHash: await hashPassword('pw-ann') }
  const real = argon2.verify
  let runs = 0
  argon2.verify = (async (...args: Parameters<typeof real>) => { runs++; return await real(...args) }) as typeof real
  t.teardown(() => { argon2.verify = real })
  for (const ttl of ['1m', 60_000] as Duration[]) {
    const clock = pinClock(t)
    const app = await buildApp({ basic: { findCredential: (name) => name === 'ann' ? record : null, cache: { ttl } } })
    app.get('/', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
    const login = async (): Promise<number> => (await app.inject({ url: '/', headers: { authorization: basicHeader('ann', 'pw-ann') } })).statusCode
    runs = 0
    t.equal(await login(), 200)
    clock.set(T0 + 59_999)
    t.equal(await login(), 200)
    t.equal(runs, 1, `${JSON.stringify(ttl)}: a hit until the minute ends`)
    clock.set(T0 + 60_000)
    t.equal(await login(), 200)
    t.equal(runs, 2, `${JSON.stringify(ttl)}: argon2 again once it has`)
    await app.close()
  }
})

t.test('token.cache.ttl: ms or a string (pinned clock)', async (t) => {
  for (const ttl of ['1m', 60_000] as Duration[]) {
    const clock = pinClock(t)
    const app = await buildApp({ token: { secret: SECRET, findUser, expiresIn: '1h', cache: { ttl } } })
    // A cache hit hands the request the claims object verified earlier: identity tells hit from miss.
    const seen: unknown[] = []
    app.get('/', { onRequest: app.authGuard(['token']) }, async (request: FastifyRequest) => {
      seen.push(request.auth?.method === 'token' ? request.auth.claims : undefined)
      return 'ok'
    })
    const { accessToken } = await app.authTokens.issue({ id: 'ann' })
    const call = async (): Promise<void> => { await app.inject({ url: '/', headers: { authorization: `Bearer ${accessToken}` } }) }
    await call()
    clock.set(T0 + 59_999)
    await call()
    clock.set(T0 + 60_000)
    await call()
    t.equal(seen.length, 3)
    t.equal(seen[1], seen[0], `${JSON.stringify(ttl)}: cached within the minute`)
    t.not(seen[2], seen[0], `${JSON.stringify(ttl)}: verified again after it`)
    await app.close()
  }
})

t.test('callbackTimeout: ms or a string; the 0.x name `timeout` is refused', async (t) => {
  for (const callbackTimeout of ['50ms', 50] as Duration[]) {
    const app = await buildApp({ callbackTimeout, apiKey: { verify: async () => await new Promise<never>(() => {}) } })
    app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => 'never')
    const res = await app.inject({ url: '/', headers: { 'x-api-key': 'k' } })
    t.equal(res.statusCode, 503, `${JSON.stringify(callbackTimeout)}: bounded`)
    t.equal(res.json().code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT')
    await app.close()
  }
  await t.rejects(buildApp({ timeout: 50, apiKey: { verify: () => null } } as never), { ...optionError, message: /unknown option options\.timeout/ })
  await t.rejects(buildApp({ callbackTimeout: -1, apiKey: { verify: () => null } }), { ...optionError, message: /callbackTimeout must be at least 0 ms/ })
})

t.test('a 0.1 option name is refused with the name to use in 1.0', async (t) => {
  const verify = (): null => null
  const cases: Array<[Record<string, unknown>, string, string]> = [
    [{ timeout: 50, apiKey: { verify } }, 'options.timeout', 'callbackTimeout'],
    [{ basic: { findUser: verify } }, 'basic.findUser', 'basic.findCredential'],
    [{ token: { secret: SECRET, lookup: verify } }, 'token.lookup', 'token.findUser'],
    [{ session: { secret: 'x'.repeat(32), lookup: verify } }, 'session.lookup', 'session.findUser'],
    [{ apiKey: { lookup: verify } }, 'apiKey.lookup', 'apiKey.findKey'],
    [{ oauth2: { baseUrl: 'http://localhost:3000', providers: { p: { issuer: 'http://127.0.0.1:9', clientId: 'c', clientSecret: 's' } }, onLogin: verify } }, 'oauth2.onLogin', 'oauth2.findUser'],
    [{ apiKey: { verify }, rateLimit: { max: 5 } }, 'rateLimit.max', 'rateLimit.perCredential.max'],
    [{ apiKey: { verify }, rateLimit: { timeWindow: '1m' } }, 'rateLimit.timeWindow', 'rateLimit.perCredential.timeWindow']
  ]
  for (const [options, old, now] of cases) {
    const escaped = (s: string): string => s.replace(/\./g, '\\.')
    await t.rejects(buildApp(options as never), { ...optionError, message: new RegExp(`unknown option ${escaped(old)} .*; renamed in 1\\.0: use ${escaped(now)}$`) }, old)
  }
  // A name that was never an option gets no hint.
  await t.rejects(buildApp({ apiKey: { verify, lookups: verify } } as never), { ...optionError, message: /unknown option apiKey\.lookups \(allowed: [^)]*\)$/ })
})

t.test('RedisStore commandTimeout and rotateApiKey grace: ms or a string', async (t) => {
  const client = new Redis({ lazyConnect: true })
  t.teardown(() => { client.disconnect() })
  t.equal(new RedisStore({ client, commandTimeout: '2s' }).commandTimeout, 2000)
  t.equal(new RedisStore({ client, commandTimeout: 1500 }).commandTimeout, 1500)
  t.equal(new RedisStore({ client }).commandTimeout, 1000, 'default one second')
  t.throws(() => new RedisStore({ client, commandTimeout: 'soon' }), { ...optionError, message: /RedisStore commandTimeout must be a number of milliseconds or a duration/ })
  const old = generateApiKey({ prefix: 'ak', environment: 'live' })
  for (const grace of ['24h', 86_400_000, '1 day'] as Duration[]) {
    t.equal(rotateApiKey(old.key, { grace, now: () => T0 }).previous.graceEndsAt, T0 + 86_400_000, `grace ${JSON.stringify(grace)}`)
  }
  t.equal(rotateApiKey(old.key, { grace: '0s', now: () => T0 }).previous.graceEndsAt, T0, 'grace \'0s\': the old key ends at once')
  t.throws(() => rotateApiKey(old.key, { grace: 'a while' }), { ...optionError, message: /rotateApiKey: grace must be a number of milliseconds/ })
})

t.test('an unreadable duration is refused at registration, naming the option path', async (t) => {
  const session = { secret: SESSION_SECRET, secure: false, findUser: (id: string) => ({ id }) }
  const cases: Array<[string, MultiauthOptions]> = [
    ['callbackTimeout', { callbackTimeout: 'soon', apiKey: { verify: () => null } }],
    ['token.expiresIn', { token: { secret: SECRET, findUser, expiresIn: 'soon' } }],
    ['token.refresh.expiresIn', { token: { secret: SECRET, findUser, refresh: { expiresIn: 'soon' } } }],
    ['token.clockTolerance', { token: { secret: SECRET, findUser, clockTolerance: 'soon' } }],
    ['token.cache.ttl', { token: { secret: SECRET, findUser, cache: { ttl: 'soon' } } }],
    ['session.maxAge', { session: { ...session, maxAge: 'soon' } }],
    ['session.absoluteTimeout', { session: { ...session, absoluteTimeout: 'soon' } }],
    ['oauth2.httpTimeout', {
      session,
      oauth2: { baseUrl: 'http://localhost:3000', providers: { p: { issuer: 'http://127.0.0.1:9', clientId: 'c', clientSecret: 's' } }, findUser: () => null, httpTimeout: 'soon' }
    }],
    ['rateLimit.perCredential.timeWindow', { apiKey: { verify: () => null }, rateLimit: { perCredential: { timeWindow: 'soon' } } }],
    ['rateLimit.failuresPerIp.timeWindow', { apiKey: { verify: () => null }, rateLimit: { failuresPerIp: { timeWindow: 'soon' } } }],
    ['rateLimit.failuresPerUser.timeWindow', { basic: { verify: () => null }, rateLimit: { failuresPerUser: { timeWindow: 'soon' } } }],
    ['basic.cache.ttl', { basic: { findCredential: () => null, cache: { ttl: 'soon' } } }]
  ]
  for (const [path, options] of cases) {
    const message = new RegExp(`^fastify-multiauth: ${path.replace(/\./g, '\\.')} must be a number of milliseconds or a duration such as '15m' or '2 hours' \\(got "soon"\\)$`)
    await t.rejects(buildApp(options), { ...optionError, message }, path)
  }
})

t.test('a token lifetime number that is not whole seconds (a 0.x count of seconds) is refused, suggesting \'<n>s\'', async (t) => {
  const cases: Array<[string, Partial<TokenOptions>, number]> = [
    ['token.expiresIn', { expiresIn: 900 }, 900],
    ['token.expiresIn', { expiresIn: 3600 }, 3600],
    ['token.expiresIn', { expiresIn: 1500 }, 1500],
    ['token.refresh.expiresIn', { refresh: { expiresIn: 1_209_600 } }, 1_209_600],
    ['token.clockTolerance', { clockTolerance: 30 }, 30]
  ]
  for (const [path, option, n] of cases) {
    await t.rejects(buildApp({ token: { secret: SECRET, findUser, ...option } }), {
      ...optionError,
      message: `fastify-multiauth: ${path} is in milliseconds and must be whole seconds (got ${n}); for ${n} seconds write '${n}s'`
    }, `${path}: ${n}`)
  }
  // What the message suggests is accepted, and means what 0.x meant.
  const app = await buildApp({ token: { secret: SECRET, findUser, expiresIn: '900s', clockTolerance: '30s', refresh: { expiresIn: '1209600s' } } })
  t.teardown(() => app.close())
  t.equal((await app.authTokens.issue({ id: 'ann' })).expiresIn, 900)
})

// ---- helpers that always exist ------------------------------------------------------------

t.test('app.authTokens, app.authSessions and app.authCache exist without their method and fail closed', async (t) => {
  const app = await buildApp({ apiKey: { verify: () => null } })
  app.post('/issue', async () => await app.authTokens.issue({ id: 'ann' }))
  app.post('/login', async (request) => { await app.authSessions.login(request, { id: 'ann' }); return 'logged in' })
  app.post('/logout', async (request) => { await app.authSessions.logout(request); return 'logged out' })
  t.teardown(() => app.close())
  const notConfigured = (method: string) => ({ statusCode: 500, code: 'FST_MULTIAUTH_NOT_CONFIGURED', message: `Authentication method "${method}" is not configured` })
  const request = {} as FastifyRequest
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['issue', async () => await app.authTokens.issue({ id: 'ann' })],
    ['refresh', async () => await app.authTokens.refresh('x', { request })],
    ['revoke', async () => await app.authTokens.revoke({ sub: 'ann', jti: 'j' })],
    ['revokeRefreshToken', async () => await app.authTokens.revokeRefreshToken('x')],
    ['revokeAll', async () => await app.authTokens.revokeAll('ann')]
  ]
  for (const [name, call] of calls) await t.rejects(call(), notConfigured('token'), `authTokens.${name}`)
  await t.rejects(app.authSessions.login(request, { id: 'ann' }), notConfigured('session'), 'authSessions.login')
  await t.rejects(app.authSessions.logout(request), notConfigured('session'), 'authSessions.logout')
  t.equal(app.authCache.clear('ann'), 0, 'authCache.clear: nothing to forget')
  for (const url of ['/issue', '/login', '/logout']) {
    const res = await app.inject({ method: 'POST', url })
    t.equal(res.statusCode, 500, `${url}: a 500, never a silent pass`)
    t.equal(res.json().code, 'FST_MULTIAUTH_NOT_CONFIGURED', url)
  }
})

// ---- the split 401 codes --------------------------------------------------------------------

t.test('401: FST_MULTIAUTH_CREDENTIALS_MISSING when nothing was presented, _INVALID when it was refused', async (t) => {
  const app = await buildApp({ basic: { verify: verifyAnn }, apiKey: { verify: (key) => key === 'good' ? { id: 'svc' } : null }, rateLimit: false })
  app.get('/', { onRequest: app.authGuard(['basic', 'apiKey']) }, async () => 'ok')
  app.get('/optional', { onRequest: app.authGuard({ methods: ['basic', 'apiKey'], optional: true }) }, async () => 'ok')
  t.teardown(() => app.close())
  const challenges = ['Basic realm="api", charset="UTF-8"', 'ApiKey realm="api", header="X-API-Key"']
  const missing = await app.inject({ url: '/' })
  t.equal(missing.statusCode, 401)
  t.same(missing.json(), { statusCode: 401, code: 'FST_MULTIAUTH_CREDENTIALS_MISSING', error: 'Unauthorized', message: 'Authentication required' })
  t.same(missing.headers['www-authenticate'], challenges)
  for (const [what, headers] of [
    ['a wrong password', { authorization: basicHeader('ann', 'wrong') }],
    ['an unknown key', { 'x-api-key': 'bad' }],
    ['both refused', { authorization: basicHeader('ann', 'wrong'), 'x-api-key': 'bad' }],
    ['another scheme than ours is no credential, a refused key is', { authorization: 'Digest x', 'x-api-key': 'bad' }]
  ] as Array<[string, Record<string, string>]>) {
    const res = await app.inject({ url: '/', headers })
    t.equal(res.statusCode, 401, what)
    t.same(res.json(), { statusCode: 401, code: 'FST_MULTIAUTH_CREDENTIALS_INVALID', error: 'Unauthorized', message: 'Invalid credentials' }, what)
  }
  t.equal((await app.inject({ url: '/', headers: { authorization: 'Digest x' } })).json().code, 'FST_MULTIAUTH_CREDENTIALS_MISSING', 'a scheme no method reads: missing')
  t.equal((await app.inject({ url: '/optional' })).statusCode, 200, 'optional: nothing presented passes')
  t.equal((await app.inject({ url: '/optional', headers: { 'x-api-key': 'bad' } })).json().code, 'FST_MULTIAUTH_CREDENTIALS_INVALID', 'optional: refused is still refused')
})

t.test('the failure budget per IP counts refused credentials, not requests that presented none', async (t) => {
  const app = await buildApp({ apiKey: { verify: (key) => key === 'good' ? { id: 'svc' } : null }, rateLimit: { failuresPerIp: { max: 2, timeWindow: '1m' } } })
  app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
  t.teardown(() => app.close())
  for (let i = 0; i < 10; i++) {
    const res = await app.inject({ url: '/' })
    t.equal(res.json().code, 'FST_MULTIAUTH_CREDENTIALS_MISSING', `request ${i + 1} without credentials: 401, not counted`)
  }
  const codes: string[] = []
  for (let i = 0; i < 5 && codes.at(-1) !== 'FST_MULTIAUTH_TOO_MANY_REQUESTS'; i++) codes.push((await app.inject({ url: '/', headers: { 'x-api-key': 'bad' } })).json().code)
  t.equal(codes.at(-1), 'FST_MULTIAUTH_TOO_MANY_REQUESTS', `refusals spend it: ${codes.join(', ')}`)
  t.ok(codes.slice(0, -1).length >= 2 && codes.slice(0, -1).every((code) => code === 'FST_MULTIAUTH_CREDENTIALS_INVALID'), 'at least max refusals before the 429')
  t.equal((await app.inject({ url: '/' })).statusCode, 429, 'once spent, the IP gets 429 before anything is checked')
})

// ---- error classes ----------------------------------------------------------------------------

t.test('every error class made without arguments has a meaningful message (no literal %s)', async (t) => {
  const classes = Object.entries(api).filter(([name, value]) => name.endsWith('Error') && typeof value === 'function') as Array<[string, new () => Error & { code: string, statusCode: number }]>
  t.ok(classes.length >= 18, `${classes.length} error classes exported`)
  for (const [name, ErrorClass] of classes) {
    const err = new ErrorClass()
    t.ok(err instanceof ErrorClass && err instanceof Error, `${name}: an Error of its class`)
    t.notMatch(err.message, /%[sdijoO]/, `${name}: no format placeholder in "${err.message}"`)
    t.ok(err.message.length > 10, `${name}: says something`)
    t.match(err.code, /^FST_MULTIAUTH_[A-Z0-9_]+$/, `${name}: code`)
    t.ok(err.statusCode >= 400 && err.statusCode < 600, `${name}: status`)
  }
  // The classes with a detail: their default, and the detail when given.
  const withDetail: Array<[new (detail?: string) => Error, string, string]> = [
    [api.BadRequestError, 'Malformed credentials: cannot be decoded', 'Malformed credentials: no colon'],
    [api.NotConfiguredError, 'Authentication method "unknown" is not configured', 'Authentication method "no colon" is not configured'],
    [api.TooManyRequestsError, 'Too many requests, retry in a few seconds', 'Too many requests, retry in no colon seconds'],
    [api.BusyError, 'Too many authentications in progress, retry in a few seconds', 'Too many authentications in progress, retry in no colon seconds'],
    [api.InvalidTokenRequestError, 'Invalid token request: a parameter is missing or malformed', 'Invalid token request: no colon'],
    // Failed before the fix: new MultiauthOptionError() read "fastify-multiauth: %s".
    [MultiauthOptionError, 'fastify-multiauth: invalid option', 'fastify-multiauth: no colon']
  ]
  for (const [ErrorClass, fallback, detailed] of withDetail) {
    t.equal(new ErrorClass().message, fallback)
    t.equal(new ErrorClass('no colon').message, detailed)
  }
  const option = new MultiauthOptionError('x')
  t.ok(option instanceof TypeError, 'MultiauthOptionError is still a TypeError')
  t.equal(option.name, 'FastifyError')
  t.equal((option as unknown as { code: string }).code, 'FST_MULTIAUTH_INVALID_OPTION')
})

// ---- stores -----------------------------------------------------------------------------------

/** A custom store over a MemoryStore, counting close() calls (with `this` bound to it). */
class ClosingStore implements MultiauthStore {
  readonly inner = new MemoryStore()
  closed = 0
  async get (key: string) { return await this.inner.get(key) }
  async set (key: string, value: string, ttl: number) { await this.inner.set(key, value, ttl) }
  async delete (key: string) { await this.inner.delete(key) }
  async close () { this.closed++ }
}

t.test('store: null and stores missing a method are option errors', async (t) => {
  const apiKey = { verify: () => null }
  await t.rejects(buildApp({ store: null as never, apiKey }), { ...optionError, message: /^fastify-multiauth: store must be a MultiauthStore object/ })
  await t.rejects(buildApp({ store: 'redis' as never, apiKey }), { ...optionError, message: /store must be a MultiauthStore object/ })
  await t.rejects(buildApp({ store: { get: async () => null, set: async () => {} } as never, apiKey }), { ...optionError, message: /store\.delete must be a function/ })
  await t.rejects(buildApp({ store: { get: async () => null, set: async () => {}, delete: async () => {}, close: 5 } as never, apiKey }), { ...optionError, message: /store\.close must be a function when given/ })
})

t.test('store.close() is called when the application closes, once', async (t) => {
  const store = new ClosingStore()
  const app = await buildApp({ store, token: { secret: SECRET, findUser, revocation: true } })
  app.get('/', { onRequest: app.authGuard(['token']) }, async () => 'ok')
  const { accessToken } = await app.authTokens.issue({ id: 'ann' })
  t.equal((await app.inject({ url: '/', headers: { authorization: `Bearer ${accessToken}` } })).statusCode, 200, 'the store serves requests')
  t.equal(store.closed, 0, 'open while the application runs')
  await app.close()
  t.equal(store.closed, 1, 'closed with the application')
})

t.test('isRedisStore: the brand Symbol.for(\'fastify-multiauth.RedisStore\'), not the class', async (t) => {
  const client = new Redis({ lazyConnect: true })
  t.teardown(() => { client.disconnect() })
  const brand = Symbol.for('fastify-multiauth.RedisStore')
  t.equal(isRedisStore(new RedisStore({ client })), true, 'a RedisStore')
  t.equal(isRedisStore({ [brand]: true }), true, 'any object carrying the brand (a RedisStore of the other build)')
  t.equal(isRedisStore(new MemoryStore()), false)
  t.equal(isRedisStore({ [brand]: 'yes' }), false, 'the brand must be true')
  t.equal(isRedisStore({ [Symbol('fastify-multiauth.RedisStore')]: true }), false, 'a symbol of the same description is not the brand')
  t.equal(isRedisStore(null), false)
  t.equal(isRedisStore(undefined), false)
})

eachTopology(t, 'a RedisStore of another build (another module instance) is a RedisStore to the plugin', async (t, redis) => {
  // A second instance of the module, as the CommonJS build is beside the ESM one: its own class.
  const specifier = '../src/stores/redis.js?another-build'
  const other = await import(specifier) as typeof import('../src/stores/redis.js')
  t.not(other.RedisStore, RedisStore, 'another class')

  const refused = new other.RedisStore(redis.storeOptions())
  t.teardown(() => refused.close())
  t.notOk(refused instanceof RedisStore, 'instanceof cannot see it')
  // Only a store recognised as a RedisStore has its eviction policy checked at registration.
  await t.rejects(buildApp({ store: refused, apiKey: { verify: () => null } }), { ...optionError, message: /maxmemory-policy is "allkeys-lru"/ })

  const store = new other.RedisStore(redis.storeOptions({ allowEviction: true }))
  const app = await buildApp({ store, apiKey: { verify: () => null }, rateLimit: { failuresPerIp: { max: 5 } } })
  app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
  t.equal((await app.inject({ url: '/', headers: { 'x-api-key': 'bad' } })).statusCode, 401)
  // Recognised, the failure counters live in this Redis (not in the process).
  t.ok((await redis.keys('multiauth:rl:fail:ip:*')).length > 0, 'the refusal was counted in Redis')
  await app.close()
  // ioredis ends the connection asynchronously; a store left open would never get here (tap's timeout).
  if (store.client.status !== 'end') await once(store.client, 'end')
  t.equal(store.client.status, 'end', 'and the application\'s close closed the connection the store owns')
}, { extraArgs: ['--maxmemory-policy', 'allkeys-lru'] })

// ---- rateLimit.perCredential ------------------------------------------------------------------

t.test('rateLimit.perCredential is off unless given; an API-key record\'s own rateLimit always counts', async (t) => {
  const plain = generateApiKey({ prefix: 'ak', environment: 'live' })
  const limited = generateApiKey({ prefix: 'ak', environment: 'live' })
  const records = new Map<string, ApiKeyRecord<MultiauthUser>>([
    [plain.id, { user: { id: 'a' }, hash: plain.hash }],
    [limited.id, { user: { id: 'b' }, hash: limited.hash, rateLimit: { max: 2 } }]
  ])
  const app = async (rateLimit: MultiauthOptions['rateLimit']): Promise<FastifyInstance> => {
    const built = await buildApp({ apiKey: { findKey: (id) => records.get(id) }, ...(rateLimit === undefined ? {} : { rateLimit }) })
    built.get('/', { onRequest: built.authGuard(['apiKey']) }, async () => 'ok')
    t.teardown(() => built.close())
    return built
  }
  const get = async (server: FastifyInstance, key: string) => await server.inject({ url: '/', headers: { 'x-api-key': key } })

  for (const [label, rateLimit] of [['rateLimit omitted', undefined], ['rateLimit: {} (failure budgets only)', {}]] as const) {
    const server = await app(rateLimit)
    for (let i = 1; i <= 5; i++) {
      const res = await get(server, plain.key)
      t.equal(res.statusCode, 200, `${label}: plain key, request ${i}`)
      t.equal(res.headers['ratelimit-limit'], undefined, `${label}: no per-credential budget`)
    }
    const first = await get(server, limited.key)
    t.equal(first.headers['ratelimit-limit'], '2', `${label}: the record's own budget is counted`)
    t.equal((await get(server, limited.key)).statusCode, 200)
    const third = await get(server, limited.key)
    t.equal(third.statusCode, 429, `${label}: the record's budget is spent`)
    t.ok(Number(third.headers['retry-after']) >= 1, 'with Retry-After')
  }

  const defaults = await app({ perCredential: {} })
  t.equal((await get(defaults, plain.key)).headers['ratelimit-limit'], '1000', 'perCredential: {} is 1000 per minute')
  const on = await app({ perCredential: { max: 3 } })
  for (let i = 1; i <= 3; i++) t.equal((await get(on, plain.key)).statusCode, 200)
  t.equal((await get(on, plain.key)).statusCode, 429, 'perCredential given: the fourth request is refused')
  t.equal((await get(on, limited.key)).headers['ratelimit-limit'], '2', 'a record\'s own budget overrides perCredential')
})

// ---- request.auth.method after an OAuth2 login ------------------------------------------------

t.test('a session begun by an OAuth2 login: method "session" under [\'session\'], "oauth2" under [\'oauth2\']', async (t) => {
  const port = await freePort()
  const base = `http://localhost:${port}`
  const provider = await startOidcProvider({ redirectUris: [`${base}/auth/local/callback`] })
  t.teardown(provider.close)
  const users = new Map<string, MultiauthUser>()
  const app = Fastify()
  await app.register(multiauth, {
    session: { secret: SESSION_SECRET, secure: false, findUser: (id) => users.get(id) ?? null },
    oauth2: {
      baseUrl: base,
      providers: { local: { issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret } },
      findUser: (profile) => {
        const user = { id: `local:${profile.id}` }
        users.set(user.id, user)
        return user
      }
    }
  })
  const describe = async (request: FastifyRequest) => ({ user: request.auth?.user ?? null, method: request.auth?.method, provider: request.auth?.method === 'session' || request.auth?.method === 'oauth2' ? request.auth.provider ?? null : null })
  app.get('/session', { onRequest: app.authGuard(['session']) }, describe)
  app.get('/oauth2', { onRequest: app.authGuard(['oauth2']) }, describe)
  app.get('/either', { onRequest: app.authGuard(['oauth2', 'session']) }, describe)
  app.post('/password-login', async (request) => {
    users.set('pw', { id: 'pw' })
    await app.authSessions.login(request, { id: 'pw' })
    return 'ok'
  })
  await app.listen({ port, host: 'localhost' })
  t.teardown(() => app.close())

  const jar = new CookieJar()
  const { callback } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer)
  t.equal(callback.status, 302, 'logged in through the provider')
  t.same(await (await jar.fetch(`${base}/session`)).json(), { user: { id: 'local:alice' }, method: 'session', provider: 'local' })
  t.same(await (await jar.fetch(`${base}/oauth2`)).json(), { user: { id: 'local:alice' }, method: 'oauth2', provider: 'local' })
  t.same(await (await jar.fetch(`${base}/either`)).json(), { user: { id: 'local:alice' }, method: 'oauth2', provider: 'local' }, 'the first listed method that admits it')

  const password = new CookieJar()
  t.equal((await password.fetch(`${base}/password-login`, { method: 'POST' })).status, 200)
  t.same(await (await password.fetch(`${base}/session`)).json(), { user: { id: 'pw' }, method: 'session', provider: null }, 'a password session has no provider')
  const refused = await password.fetch(`${base}/oauth2`)
  t.equal(refused.status, 401, 'nor does [\'oauth2\'] admit it')
  t.equal((await refused.json()).code, 'FST_MULTIAUTH_CREDENTIALS_INVALID')
  t.same(await (await password.fetch(`${base}/either`)).json(), { user: { id: 'pw' }, method: 'session', provider: null })
})
