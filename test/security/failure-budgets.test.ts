// Failure budgets under real concurrency (issue 12, items 5, 6, 8 and 10): honest concurrent
// traffic is queued, never refused; waiters are admitted in arrival order, one per freed slot,
// and wait at most `callbackTimeout`; the per-username budget is keyed on a normalised username; the
// in-flight bookkeeping empties when idle; the budgets are on by default with Basic.
// Each test says whether (and how) it failed on the code before its fix.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { generateApiKey, RedisStore } from '../../src/index.js'
import type { ApiKeyRecord, MultiauthOptions } from '../../src/index.js'
import { kFailureGates } from '../../src/rate-limit/index.js'
import type { FailureGates } from '../../src/rate-limit/index.js'
import { basicHeader, buildApp } from '../helpers/app.js'
import { rawRequest } from '../helpers/raw-http.js'
import { eachTopology } from '../helpers/redis-topology.js'
import { captureLogs } from '../helpers/security.js'

const gates = (app: FastifyInstance): FailureGates => (app as unknown as Record<symbol, FailureGates>)[kFailureGates] as FailureGates
const tally = (statuses: number[]): Record<number, number> => {
  const counts: Record<number, number> = {}
  for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1
  return counts
}
/** Yields to the event loop until `done()` holds; bounded (2 s), so a broken condition fails instead of hanging. */
async function until (done: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 2000
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}
const nextTurn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

async function keyAndBasicApp (rateLimit: MultiauthOptions['rateLimit'], pause: () => Promise<unknown> = nextTurn) {
  const records = new Map<string, ApiKeyRecord<{ id: string }>>()
  const key = generateApiKey({ prefix: 'ak', environment: 'live' })
  records.set(key.id, { user: { id: 'svc' }, hash: key.hash })
  // Asynchronous callbacks, so requests really overlap while they are verified.
  const app = await buildApp({
    apiKey: { findKey: async (id) => { await pause(); return records.get(id) ?? null } },
    basic: { verify: async (u, p) => { await pause(); return p === 'right' ? { id: u } : null } },
    rateLimit
  })
  app.get('/me', { onRequest: app.authGuard(['apiKey', 'basic']) }, async () => 'ok')
  return { app, key: key.key }
}

t.test('[issue 12.5] 200 concurrent valid requests, rateLimit on with a budget above 200: 200 × 200, zero 429 (inject)', async (t) => {
  // Before the fix: 130 × 429 for each of the two bursts (each waiter was woken on every finished
  // request and refused after 50 wake-ups, although nothing had failed).
  const { app, key } = await keyAndBasicApp({ perCredential: { max: 1000 } })
  t.teardown(() => app.close())
  await app.ready()
  const keyed = await Promise.all(Array.from({ length: 200 }, async () => (await app.inject({ url: '/me', headers: { 'x-api-key': key } })).statusCode))
  t.same(tally(keyed), { 200: 200 }, 'one API key from one IP')
  const logins = await Promise.all(Array.from({ length: 200 }, async () => (await app.inject({ url: '/me', headers: { authorization: basicHeader('alice', 'right') } })).statusCode))
  t.same(tally(logins), { 200: 200 }, 'one Basic user from one IP (per-IP and per-username budgets both in the way)')
  t.equal(gates(app).ip?.size, 0, 'no attempt left in flight')
  t.equal(gates(app).user?.size, 0)
})

t.test('[issue 12.5] 200 concurrent valid requests over real sockets: 200 × 200, zero 429', async (t) => {
  // Before the fix: 25 × 429 in the run we checked (the same gate), over TCP as through inject. Each check takes
  // 20 ms here, so that requests arriving over a few hundred milliseconds really overlap.
  const { app, key } = await keyAndBasicApp({ perCredential: { max: 1000 } }, async () => await sleep(20))
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  const head = (header: string): string => `GET /me HTTP/1.1\r\nHost: localhost\r\n${header}\r\nConnection: close\r\n\r\n`
  const statuses = await Promise.all(Array.from({ length: 200 }, async (_, i) => (await rawRequest(port, head(i % 2 === 0
    ? `X-API-Key: ${key}`
    : `Authorization: ${basicHeader('alice', 'right')}`), 20_000)).status))
  t.same(tally(statuses), { 200: 200 })
})

t.test('[issue 12.5] waiters are admitted in arrival order, one per freed slot; a refusal frees no slot; the spent budget refuses the rest', async (t) => {
  // Before the fix the order held, but the spent username's entry stayed in the in-flight map (the
  // last assertion failed). Budget 2 for one username: two verifications in flight, the others queue. Every verify
  // call waits for the test to answer it, so the order of admissions is observable.
  const started: string[] = []
  const answers = new Map<string, (ok: boolean) => void>()
  const app = await buildApp({
    basic: {
      verify: async (u, p) => {
        started.push(p)
        return await new Promise((resolve) => answers.set(p, (ok) => resolve(ok ? { id: u } : null)))
      }
    },
    rateLimit: { failuresPerIp: false, failuresPerUser: { max: 2 } }
  })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const send = (password: string) => app.inject({ url: '/me', headers: { authorization: basicHeader('alice', password) } })
  const answer = (password: string, ok: boolean) => (answers.get(password) as (ok: boolean) => void)(ok)
  const user = gates(app).user as NonNullable<FailureGates['user']>

  const responses = [send('p0'), send('p1')]
  await until(() => started.length === 2, 'two verifications in flight')
  for (let i = 2; i < 6; i++) {
    responses.push(send(`p${i}`))
    await until(() => user.waiting === i - 1, `p${i} queued`)
  }
  t.same(started, ['p0', 'p1'], 'the budget (2) bounds the verifications in flight')

  answer('p0', true) // a success gives its slot back: exactly the first waiter starts
  await until(() => started.length === 3, 'p2 started')
  for (let i = 0; i < 5; i++) await nextTurn()
  t.same(started, ['p0', 'p1', 'p2'], 'one slot freed, one waiter admitted: the first in line')

  answer('p1', false) // a refusal spends the budget it held: nobody new starts (1 left, p2 in flight)
  for (let i = 0; i < 20; i++) await nextTurn()
  t.same(started, ['p0', 'p1', 'p2'], 'a refusal frees no room')
  t.equal(user.waiting, 3)

  answer('p2', false) // now spent (2 refusals, none in flight): every waiter gets the 429, unverified
  const statuses = (await Promise.all(responses)).map((r) => r.statusCode)
  t.same(statuses, [200, 401, 401, 429, 429, 429])
  t.same(started, ['p0', 'p1', 'p2'], 'the 429s were never verified')
  t.equal(user.size, 0, 'and nothing stays in flight')
})

t.test('[issue 12.5] a wait for a slot is bounded by `callbackTimeout`: 503 FST_MULTIAUTH_BUSY with Retry-After', async (t) => {
  // Before the fix a waiter waited without bound (then got a slot and its verification
  // timed out in turn): here the third request was verified and got 503 CALLBACK_TIMEOUT after 900 ms.
  // Budget 1: R0 holds the only slot with a verification that never answers (its own timeout,
  // 300 ms, ends it); R1 and R2 wait. R0's timeout frees the slot for R1 (first in line); R2,
  // queued since ~0 ms, reaches its 300 ms bound before R1 can finish, and gets the 503.
  // Node runs timers of one duration in the order they were set, and R2's was set after R0's.
  const started: string[] = []
  const logs = captureLogs('info')
  const app = await buildApp({
    basic: { verify: async (_u, p) => { started.push(p); return await new Promise(() => {}) } },
    rateLimit: { failuresPerIp: false, failuresPerUser: { max: 1 } },
    callbackTimeout: 300
  }, { logger: logs.logger })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const user = gates(app).user as NonNullable<FailureGates['user']>
  const send = (password: string) => app.inject({ url: '/me', headers: { authorization: basicHeader('alice', password) } })
  const r0 = send('p0')
  await until(() => started.length === 1, 'R0 verifying')
  const r1 = send('p1')
  await until(() => user.waiting === 1, 'R1 queued')
  const r2 = send('p2')
  await until(() => user.waiting === 2, 'R2 queued')
  const [a, b, c] = await Promise.all([r0, r1, r2])
  t.equal(a.json().code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT', 'R0: its verification timed out')
  t.equal(b.json().code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT', 'R1 got the slot, then timed out the same way')
  t.equal(c.statusCode, 503)
  t.equal(c.json().code, 'FST_MULTIAUTH_BUSY', 'R2: no slot within timeout')
  t.equal(c.headers['retry-after'], '1', 'Retry-After: the wait, rounded up to whole seconds')
  t.same(started, ['p0', 'p1'], 'R2 was never verified')
  t.ok(logs.lines().some((l) => l.msg === 'multiauth: busy'), 'logged')
  t.equal(user.size, 0)
})

t.test('[issue 12.8] 10,000 distinct bad usernames, two concurrent guesses each: the in-flight map is empty afterwards', async (t) => {
  // Before the fix the per-username map kept one entry for every username whose second guess
  // had waited and was then refused: 10,000 entries left here (checked by exposing the old map's size).
  const app = await buildApp({
    basic: { verify: async () => { await nextTurn(); return null } },
    rateLimit: { failuresPerIp: { max: 1_000_000 }, failuresPerUser: { max: 1 } }
  })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const statuses: number[] = []
  for (let batch = 0; batch < 20; batch++) {
    const sends = []
    for (let i = 0; i < 500; i++) {
      const authorization = basicHeader(`user${batch * 500 + i}@example.com`, 'wrong')
      for (let j = 0; j < 2; j++) sends.push(app.inject({ url: '/me', headers: { authorization } }))
    }
    for (const res of await Promise.all(sends)) statuses.push(res.statusCode)
  }
  t.same(tally(statuses), { 401: 10_000, 429: 10_000 }, 'each username: one guess checked, the waiting one refused')
  t.equal(gates(app).user?.size, 0, 'per-username gates: none left')
  t.equal(gates(app).ip?.size, 0, 'per-IP gates: none left')
})

t.test('[issue 12.6] the per-username budget is keyed on the NFC, lower-cased username; findCredential/verify still see the raw one', async (t) => {
  // Before the fix each spelling had a full budget: 3 × "ALICE@…" and 3 × "alice@…" were all checked (401).
  const seen: string[] = []
  const app = await buildApp({
    basic: { verify: async (u, p) => { seen.push(u); return p === 'right' ? { id: u.toLowerCase() } : null } },
    rateLimit: { failuresPerIp: false, failuresPerUser: { max: 3 } }
  })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const send = async (user: string, password: string) => (await app.inject({ url: '/me', headers: { authorization: basicHeader(user, password) } })).statusCode
  t.equal(await send('ALICE@example.com', 'x'), 401)
  t.equal(await send('alice@example.com', 'x'), 401)
  t.equal(await send('Alice@Example.COM', 'x'), 401)
  t.equal(await send('alice@EXAMPLE.com', 'right'), 429, 'one budget for every spelling')
  t.same(seen, ['ALICE@example.com', 'alice@example.com', 'Alice@Example.COM'], 'the application saw the usernames as sent')
  // NFC: "é" precomposed and "e" + combining acute are one name.
  t.equal(await send('jos\u00e9', 'x'), 401)
  t.equal(await send('jose\u0301', 'x'), 401)
  t.equal(await send('JOS\u00c9', 'x'), 401)
  t.equal(await send('jose\u0301', 'right'), 429)
  t.equal(await send('bob', 'right'), 200, 'another account is unaffected')
})

t.test('[issue 12.6] normalizeUsername: the application\'s own mapping; a throw or a non-string is a 500 that leaks nothing', async (t) => {
  // Before the fix the option did not exist (registration failed: unknown option).
  const logs = captureLogs('info')
  const app = await buildApp({
    basic: { verify: async (u, p) => p === 'right' ? { id: u } : null },
    rateLimit: {
      failuresPerIp: false,
      failuresPerUser: {
        max: 2,
        normalizeUsername: (u) => {
          if (u === 'boom') throw new Error('db://secret@host normalizer exploded')
          if (u === 'nostring') return 42 as unknown as string
          return u.trim().replace(/\+[^@]*@/, '@') // "alice+tag@x" is alice@x for this application
        }
      }
    }
  }, { logger: logs.logger })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const send = (user: string, password: string) => app.inject({ url: '/me', headers: { authorization: basicHeader(user, password) } })
  t.equal((await send('alice+a@x', 'x')).statusCode, 401)
  t.equal((await send('alice+b@x', 'x')).statusCode, 401)
  t.equal((await send('alice@x', 'right')).statusCode, 429, 'tags share the account\'s budget')
  const boom = await send('boom', 'x')
  t.equal(boom.statusCode, 500)
  t.equal(boom.json().code, 'FST_MULTIAUTH_CALLBACK_ERROR')
  t.notMatch(boom.body, /secret|exploded/, 'the thrown message stays in the log')
  t.match(logs.text(), /normalizer exploded/)
  const bad = await send('nostring', 'x')
  t.equal(bad.statusCode, 500)
  t.equal(bad.json().code, 'FST_MULTIAUTH_CALLBACK_ERROR')
  await t.rejects(buildApp({ basic: { verify: () => null }, rateLimit: { failuresPerUser: { normalizeUsername: 'lower' as never } } }), /rateLimit.failuresPerUser.normalizeUsername must be a function/)
})

t.test('[issue 12.6, class] the keyed budget\'s IP fallback is normalised like the failure budget: IPv4-mapped IPv6 and one /64 share it', async (t) => {
  // Before the fix the fallback key was the raw request.ip: "::ffff:192.0.2.1" and "192.0.2.1"
  // each had a full budget, and so did every address of a /64.
  const app = await buildApp({ apiKey: { verify: async (k) => k === 'good-key-0123456789' ? { name: 'no id' } : null }, rateLimit: { perCredential: { max: 2 } } })
  app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const send = async (ip: string) => (await app.inject({ url: '/me', remoteAddress: ip, headers: { 'x-api-key': 'good-key-0123456789' } })).statusCode
  t.equal(await send('192.0.2.1'), 200)
  t.equal(await send('::ffff:192.0.2.1'), 200)
  t.equal(await send('192.0.2.1'), 429, 'the mapped address counted for the same client')
  t.equal(await send('2001:db8:1:1::1'), 200)
  t.equal(await send('2001:db8:1:1::2'), 200)
  t.equal(await send('2001:db8:1:1:ffff::9'), 429, 'one /64, one budget')
})

t.test('[issue 12.5, class] requests that present no credentials do not spend the per-IP failure budget', async (t) => {
  // Before the fix every 401 counted, also "no credentials": a client doing the 401-challenge
  // round trip, or a monitor polling a guarded route, locked its IP (and everyone behind it) out.
  const app = await buildApp({ basic: { verify: async (u, p) => p === 'right' ? { id: u } : null }, rateLimit: { failuresPerIp: { max: 3 } } })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  for (let i = 0; i < 30; i++) t.equal((await app.inject({ url: '/me' })).statusCode, 401)
  t.equal((await app.inject({ url: '/me', headers: { authorization: basicHeader('alice', 'right') } })).statusCode, 200, '30 anonymous requests, then a login: admitted')
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/me', headers: { authorization: basicHeader(`u${i}`, 'x') } })).statusCode, 401)
  t.equal((await app.inject({ url: '/me' })).statusCode, 429, 'refused credentials still spend it, and a spent IP gets 429 even without credentials')
})

t.test('[issue 12.10] with basic and no rateLimit option, the failure budgets are on (20 per IP per minute, 10 per username per 15 min)', async (t) => {
  // Before the fix, without `rateLimit` nothing was limited: all of these were 401 (each one an argon2 run with findCredential).
  for (const mode of ['verify', 'findCredential'] as const) {
    const basic = mode === 'verify'
      ? { verify: async (_u: string, p: string) => p === 'right' ? { id: 'x' } : null }
      : { findCredential: () => null } // unknown users: each refusal still costs a dummy argon2 run
    const app = await buildApp({ basic })
    app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
    await app.ready()
    const send = async (user: string, ip: string) => await app.inject({ url: '/me', remoteAddress: ip, headers: { authorization: basicHeader(user, 'x') } })
    const perIp: number[] = []
    for (let i = 0; i < 21; i++) perIp.push((await send(`user${i}`, '198.51.100.1')).statusCode)
    t.same(tally(perIp), { 401: 20, 429: 1 }, `${mode}: 20 refusals from one IP, then 429`)
    const perUser: number[] = []
    const started = Date.now()
    for (let i = 0; i < 11; i++) perUser.push((await send('victim', `203.0.113.${i}`)).statusCode)
    t.same(tally(perUser), { 401: 10, 429: 1 }, `${mode}: 10 refusals for one username from 10 IPs, then 429`)
    const locked = await send('victim', '203.0.113.99')
    // The window's end, rounded up: 900 s unless this machine took over a second since it started.
    const retryAfter = Number(locked.headers['retry-after'])
    t.ok(retryAfter <= 900 && retryAfter >= Math.ceil((900_000 - (Date.now() - started)) / 1000), `Retry-After ${retryAfter}: the window's end`)
    await app.close()
  }
})

t.test('[issue 12.10] each default is switchable off explicitly; apps without basic get no limits by default', async (t) => {
  // Before the fix `rateLimit: false` and `max: false` (now `perCredential: false`) did not exist (registration errors).
  const verify = async (_u: string, p: string) => p === 'right' ? { id: 'x' } : null
  async function refusalsFromOneIp (options: MultiauthOptions, n = 30): Promise<Record<number, number>> {
    const app = await buildApp(options)
    app.get('/me', { onRequest: app.authGuard(options.basic !== undefined ? ['basic'] : ['apiKey']) }, async () => 'ok')
    await app.ready()
    const statuses = []
    for (let i = 0; i < n; i++) {
      statuses.push((await app.inject({ url: '/me', headers: options.basic !== undefined ? { authorization: basicHeader('victim', `x${i}`) } : { 'x-api-key': `bad-key-${i}` } })).statusCode)
    }
    await app.close()
    return tally(statuses)
  }
  t.same(await refusalsFromOneIp({ basic: { verify }, rateLimit: false }), { 401: 30 }, 'rateLimit: false turns everything off')
  t.same(await refusalsFromOneIp({ basic: { verify }, rateLimit: { perCredential: false, failuresPerIp: false, failuresPerUser: false } }), { 401: 30 }, 'each budget off: the same')
  t.same(await refusalsFromOneIp({ basic: { verify }, rateLimit: { perCredential: false, failuresPerIp: false } }), { 401: 10, 429: 20 }, 'per username only')
  t.same(await refusalsFromOneIp({ basic: { verify }, rateLimit: { perCredential: false, failuresPerUser: false } }), { 401: 20, 429: 10 }, 'per IP only')
  t.same(await refusalsFromOneIp({ apiKey: { verify: () => null } }), { 401: 30 }, 'no basic, no rateLimit: no limits (keys are not guessable; nothing costs argon2)')
  await t.rejects(buildApp({ basic: { verify }, rateLimit: true as never }), /rateLimit must be an object, or false/)
  // A window given without its budget is refused, never silently ignored: 1.0 has no top-level
  // max/timeWindow (the per-credential budget is `perCredential: { max, timeWindow }`).
  await t.rejects(buildApp({ basic: { verify }, rateLimit: { perCredential: false, timeWindow: 1000 } as never }), /unknown option rateLimit\.timeWindow/)
  await t.rejects(buildApp({ basic: { verify }, rateLimit: { max: 5 } as never }), /unknown option rateLimit\.max/)
})

eachTopology(t, '[issue 12.10] the default failure budgets use Redis counters with a RedisStore', async (t, redis) => {
  // Two instances on one Redis, no rateLimit option: the per-username budget is shared.
  // Before the fix: no limit without the option (12 × 401, 12 checks).
  const apps: FastifyInstance[] = []
  let checks = 0
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    const store = new RedisStore(redis.storeOptions({ prefix: 'fb:' }))
    app.addHook('onClose', async () => { await store.close() })
    await app.register(multiauth, { store, basic: { verify: async () => { checks++; return null } } })
    app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
    await app.ready()
    apps.push(app)
  }
  t.teardown(async () => { for (const app of apps) await app.close() })
  const statuses = []
  for (let i = 0; i < 12; i++) {
    statuses.push((await (apps[i % 2] as FastifyInstance).inject({ url: '/me', remoteAddress: `192.0.2.${i}`, headers: { authorization: basicHeader('victim', `x${i}`) } })).statusCode)
  }
  t.same(tally(statuses), { 401: 10, 429: 2 }, '10 refusals across both instances, then 429 on either')
  t.equal(checks, 10)
  const keys = await redis.keys('fb:rl:fail:*') // on every primary
  t.ok(keys.some((k) => k.startsWith('fb:rl:fail:user:')), 'per-username counters live in Redis')
  t.ok(keys.some((k) => k.startsWith('fb:rl:fail:ip:')), 'per-IP counters too')
})
