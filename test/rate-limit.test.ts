import t from 'tap'
import type { Test } from 'tap'
import { mock } from 'node:test'
import Fastify from 'fastify'
import fastifyRateLimit from '@fastify/rate-limit'
import multiauth, { generateApiKey } from '../src/index.js'
import type { ApiKeyRecord, MultiauthOptions } from '../src/index.js'
import { basicHeader, buildApp } from './helpers/app.js'

/**
 * Retry-After for a window of `windowSeconds` that started at `startedAt` (ms, taken before the
 * first counted request): the server rounds the time left up to whole seconds, so the answer lies
 * between that rounding at the moment the 429 was received and the whole window. Exact whatever
 * the machine's load, instead of assuming less than a second passed.
 */
function retryAfterWithin (t: Test, header: unknown, windowSeconds: number, startedAt: number): void {
  const left = Math.ceil((windowSeconds * 1000 - (Date.now() - startedAt)) / 1000)
  const value = Number(header)
  t.ok(Number.isInteger(value) && value >= Math.max(1, left) && value <= windowSeconds, `Retry-After ${String(header)} within [${Math.max(1, left)}, ${windowSeconds}]`)
}

function keyDb () {
  const records = new Map<string, ApiKeyRecord<{ id: string }>>()
  const calls = { findKey: 0 }
  return {
    records,
    calls,
    issue (user: string, extra: Partial<ApiKeyRecord<{ id: string }>> = {}) {
      const k = generateApiKey({ prefix: 'ak', environment: 'live' })
      records.set(k.id, { user: { id: user }, hash: k.hash, ...extra })
      return k
    },
    findKey: async (id: string) => { calls.findKey++; return records.get(id) ?? null }
  }
}

async function limitedApp (db: ReturnType<typeof keyDb>, rateLimit: MultiauthOptions['rateLimit'], extra: Partial<MultiauthOptions> = {}) {
  const app = await buildApp({ apiKey: { findKey: db.findKey }, rateLimit, ...extra })
  app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async (request) => ({ keyId: request.auth?.method === 'apiKey' ? request.auth.keyId : null }))
  await app.ready()
  return app
}

const fromIp = (key: string | undefined, ip = '10.0.0.1') => ({ url: '/me', remoteAddress: ip, headers: key === undefined ? {} : { 'x-api-key': key } })

t.test('the 6th request of a key limited to 5/min gets 429 with Retry-After; a second key is unaffected', async (t) => {
  const db = keyDb()
  const limited = db.issue('u1', { rateLimit: { max: 5 } })
  const other = db.issue('u2', { rateLimit: { max: 5 } })
  const app = await limitedApp(db, { perCredential: { max: 1000, timeWindow: 60_000 } })
  t.teardown(() => app.close())
  const started = Date.now()
  for (let i = 1; i <= 5; i++) {
    // Different client IPs: the budget belongs to the key, not to the address.
    const res = await app.inject(fromIp(limited.key, `10.0.0.${i}`))
    t.equal(res.statusCode, 200, `request ${i}`)
    t.equal(res.headers['ratelimit-limit'], '5')
    t.equal(res.headers['ratelimit-remaining'], String(5 - i))
  }
  const sixth = await app.inject(fromIp(limited.key, '10.0.0.9'))
  t.equal(sixth.statusCode, 429)
  retryAfterWithin(t, sixth.headers['retry-after'], 60, started)
  t.equal(sixth.headers['ratelimit-limit'], '5')
  t.equal(sixth.headers['ratelimit-remaining'], '0')
  t.equal(sixth.headers['ratelimit-reset'], '60')
  t.equal(sixth.json().code, 'FST_MULTIAUTH_TOO_MANY_REQUESTS')
  const second = await app.inject(fromIp(other.key))
  t.equal(second.statusCode, 200, 'the second key has its own budget')
  t.equal(second.headers['ratelimit-remaining'], '4')
})

t.test('the window resets (fake clock)', async (t) => {
  mock.timers.enable({ apis: ['Date'], now: Date.UTC(2030, 0, 1) })
  t.teardown(() => mock.timers.reset())
  const db = keyDb()
  const k = db.issue('u1')
  const app = await limitedApp(db, { perCredential: { max: 2, timeWindow: 10_000 } })
  t.teardown(() => app.close())
  t.equal((await app.inject(fromIp(k.key))).statusCode, 200)
  t.equal((await app.inject(fromIp(k.key))).statusCode, 200)
  t.equal((await app.inject(fromIp(k.key))).statusCode, 429, 'the perCredential max applies without a per-key override')
  mock.timers.tick(9_999)
  t.equal((await app.inject(fromIp(k.key))).statusCode, 429)
  mock.timers.tick(1)
  t.equal((await app.inject(fromIp(k.key))).statusCode, 200, 'a new window')
})

t.test('hook order: the guard runs before the keyed limit', async (t) => {
  const db = keyDb()
  const k = db.issue('u1', { rateLimit: { max: 2 } })
  const app = await limitedApp(db, { failuresPerIp: false })
  t.teardown(() => app.close())
  t.equal((await app.inject(fromIp(k.key))).statusCode, 200)
  t.equal((await app.inject(fromIp(k.key))).statusCode, 200)
  t.equal((await app.inject(fromIp(k.key))).statusCode, 429)
  // A spent key's budget is never reached by requests that do not authenticate as that key:
  const forged = generateApiKey({ prefix: 'ak', environment: 'live' })
  const wrong = await app.inject(fromIp(forged.key))
  t.equal(wrong.statusCode, 401, 'an unknown key is refused by the guard, not by the limit')
  t.equal(wrong.headers['ratelimit-limit'], undefined, 'no keyed budget was touched')
  t.equal((await app.inject(fromIp(undefined))).statusCode, 401, 'no key: 401 with a challenge, not 429')
  // And the keyed counter was not consumed by refused requests: a fresh key gets its full budget.
  const fresh = db.issue('u2', { rateLimit: { max: 2 } })
  t.equal((await app.inject(fromIp(fresh.key))).headers['ratelimit-remaining'], '1')
})

t.test('keyed by user id for other methods; two guards on one request count it once', async (t) => {
  const app = await buildApp({
    basic: { verify: async (u, p) => p === 'pw' ? { id: u } : null },
    rateLimit: { perCredential: { max: 3 } }
  })
  t.teardown(() => app.close())
  app.addHook('onRequest', app.authGuard(['basic']))
  app.get('/twice', { onRequest: app.authGuard({ methods: ['basic'] }) }, async () => 'ok')
  await app.ready()
  const alice = { url: '/twice', headers: { authorization: basicHeader('alice', 'pw') } }
  t.equal((await app.inject(alice)).headers['ratelimit-remaining'], '2', 'counted once, not twice')
  t.equal((await app.inject(alice)).statusCode, 200)
  t.equal((await app.inject(alice)).statusCode, 200)
  t.equal((await app.inject(alice)).statusCode, 429)
  t.equal((await app.inject({ url: '/twice', headers: { authorization: basicHeader('bob', 'pw') } })).statusCode, 200, 'bob has his own budget')
})

t.test('without perCredential there is no per-credential budget (a key record\'s own rateLimit still counts, above)', async (t) => {
  const app = await buildApp({ basic: { verify: async (u, p) => p === 'pw' ? { id: u } : null }, rateLimit: {} })
  t.teardown(() => app.close())
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  const alice = { url: '/me', headers: { authorization: basicHeader('alice', 'pw') } }
  for (let i = 0; i < 5; i++) {
    const res = await app.inject(alice)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['ratelimit-limit'], undefined, `request ${i + 1}: nothing counted it`)
  }
})

t.test('failed attempts per IP: 429 before any credential is checked, other IPs unaffected', async (t) => {
  const db = keyDb()
  const valid = db.issue('u1')
  const app = await limitedApp(db, { failuresPerIp: { max: 3, timeWindow: 60_000 } })
  t.teardown(() => app.close())
  const started = Date.now()
  for (let i = 0; i < 3; i++) {
    const guess = generateApiKey({ prefix: 'ak', environment: 'live' }).key
    t.equal((await app.inject(fromIp(guess, '192.0.2.7'))).statusCode, 401)
  }
  const findKeyCalls = db.calls.findKey
  const blocked = await app.inject(fromIp(valid.key, '192.0.2.7'))
  t.equal(blocked.statusCode, 429, 'the IP spent its failure budget: even a valid key waits')
  retryAfterWithin(t, blocked.headers['retry-after'], 60, started)
  t.equal(blocked.headers['ratelimit-limit'], '3')
  t.equal(db.calls.findKey, findKeyCalls, 'no findKey call for a blocked IP')
  t.equal((await app.inject(fromIp(undefined, '192.0.2.7'))).statusCode, 429, 'nor does an anonymous request get through')
  t.equal((await app.inject(fromIp(valid.key, '192.0.2.8'))).statusCode, 200, 'another IP is unaffected')
  // Malformed credentials (400) count as failures too.
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ ...fromIp('a\u0001b', '192.0.2.9') })).statusCode, 400)
  t.equal((await app.inject(fromIp(valid.key, '192.0.2.9'))).statusCode, 429)
})

t.test('successful requests do not spend the IP failure budget', async (t) => {
  const db = keyDb()
  const valid = db.issue('u1')
  const app = await limitedApp(db, { failuresPerIp: { max: 2 } })
  t.teardown(() => app.close())
  for (let i = 0; i < 10; i++) t.equal((await app.inject(fromIp(valid.key))).statusCode, 200)
})

t.test('Basic brute force: failed attempts per username from any IP, then 429 with Retry-After', async (t) => {
  let checks = 0
  const app = await buildApp({
    basic: { verify: async (u, p) => { checks++; return p === 'right' ? { id: u } : null } },
    rateLimit: { failuresPerUser: { max: 3, timeWindow: 900_000 }, failuresPerIp: { max: 100 } }
  })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const attempt = (user: string, password: string, ip: string) =>
    app.inject({ url: '/me', remoteAddress: ip, headers: { authorization: basicHeader(user, password) } })
  const started = Date.now()
  for (let i = 0; i < 3; i++) t.equal((await attempt('alice', `guess${i}`, `198.51.100.${i}`)).statusCode, 401)
  const before = checks
  const locked = await attempt('alice', 'right', '198.51.100.50')
  t.equal(locked.statusCode, 429, 'distributed guessing locks the username, not only an IP')
  retryAfterWithin(t, locked.headers['retry-after'], 900, started)
  t.equal(checks, before, 'the password is not even checked')
  t.equal((await attempt('bob', 'right', '198.51.100.1')).statusCode, 200, 'another user is unaffected')
})

t.test('Basic brute force: failed attempts per IP across usernames', async (t) => {
  const app = await buildApp({
    basic: { verify: async (u, p) => p === 'right' ? { id: u } : null },
    rateLimit: { failuresPerIp: { max: 4 } }
  })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  for (let i = 0; i < 4; i++) {
    t.equal((await app.inject({ url: '/me', remoteAddress: '203.0.113.5', headers: { authorization: basicHeader(`user${i}`, 'x') } })).statusCode, 401)
  }
  const res = await app.inject({ url: '/me', remoteAddress: '203.0.113.5', headers: { authorization: basicHeader('user9', 'right') } })
  t.equal(res.statusCode, 429)
  t.ok(Number(res.headers['retry-after']) > 0)
})

t.test('rateLimit options are checked at registration', async (t) => {
  const apiKey = { verify: async () => null }
  await t.rejects(buildApp({ apiKey, rateLimit: { perCredential: { max: 0 } } }), /rateLimit.perCredential.max must be a positive integer/)
  await t.rejects(buildApp({ apiKey, rateLimit: { perCredential: { timeWindow: 'a while' } } }), /rateLimit.perCredential.timeWindow must be a number of milliseconds or a duration/)
  await t.rejects(buildApp({ apiKey, rateLimit: { failuresPerIp: { timeWindow: -1 } } }), /rateLimit.failuresPerIp.timeWindow must be at least 1 ms/)
  // The 0.x top-level budget is gone (now rateLimit.perCredential): refused, not silently ignored.
  await t.rejects(buildApp({ apiKey, rateLimit: { max: 5 } as never }), /unknown option rateLimit.max/)
  await t.rejects(buildApp({ apiKey, rateLimit: { failuresPerIp: { max: -1 } } }), /failuresPerIp.max/)
  await t.rejects(buildApp({ apiKey, rateLimit: { failuresPerUser: true as never } }), /failuresPerUser must be an object/)
  await t.rejects(buildApp({ apiKey, rateLimit: { nope: 1 } as never }), /unknown option rateLimit.nope/)
})

t.test('@fastify/rate-limit registered by the application first: a clear error, not a silent wrong store', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRateLimit, { global: false })
  // perCredential is counted by @fastify/rate-limit, whose decorators the application's registration would shadow.
  await t.rejects(async () => { await app.register(multiauth, { apiKey: { verify: async () => null }, rateLimit: { perCredential: {} } }) }, /register fastify-multiauth before @fastify\/rate-limit/)
})

t.test('the application may register @fastify/rate-limit after the plugin: both work', async (t) => {
  const db = keyDb()
  const k = db.issue('u1', { rateLimit: { max: 10 } })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(multiauth, { apiKey: { findKey: db.findKey }, rateLimit: {} })
  await app.register(fastifyRateLimit, { max: 2, timeWindow: 60_000 })
  app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
  await app.ready()
  t.equal((await app.inject(fromIp(k.key))).statusCode, 200)
  t.equal((await app.inject(fromIp(k.key))).statusCode, 200)
  t.equal((await app.inject(fromIp(k.key))).statusCode, 429, "the application's own global IP limit still applies")
})
