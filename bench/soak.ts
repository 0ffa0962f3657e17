// Soak: bounded mixed valid/invalid traffic on loopback across every method that exists,
// checking that every response has the expected status and that RSS and the store's key
// count stay flat. Prints its figures; exits 1 on any unexpected status or growth.
//
//   SOAK_SECONDS=60 npx tsx bench/soak.ts      (default 600 s; CI uses 60)
//   SOAK_CONNECTIONS=8                         (concurrent keep-alive clients, default 8)
//
// Two apps on one store: the first has Basic and the simple API-key `verify`; the second
// (`app: 'methods'`) has JWT tokens (revocation, token routes), cookie sessions, API-key
// records (`findKey`) and per-credential rate limits. Scenarios with a `flow` run several
// requests (login → use → logout) and report the first unexpected status.
import http from 'node:http'
import type { FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import { constantTimeEqual, generateApiKey, MemoryStore, RedisStore } from '../src/index.js'
import type { ApiKeyRecord } from '../src/index.js'
import { basicHeader, buildApp } from '../test/helpers/app.js'
import { redisAvailable, startRedis } from '../test/helpers/redis.js'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 600)
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 8)
const SAMPLES = 12
const USAGE_TTL_MS = 2000 // per-key usage and failure counters: they must expire, so the key count stays flat

interface Scenario {
  name: string
  /** Which app: the Basic/simple-key one (default) or the one with tokens, sessions and key records. */
  app?: 'methods'
  method?: 'GET' | 'OPTIONS' | 'POST'
  path: string
  /** A function when each request needs fresh credentials. */
  headers: Record<string, string> | (() => Record<string, string>)
  expect: number
  /** Several requests in a row; resolves `expect` when every step answered as it should, else the first wrong status. */
  flow?: (request: Requester) => Promise<number>
}

type Requester = (method: string, path: string, headers?: Record<string, string>, body?: string) => Promise<{ status: number, setCookie: string[], body: string }>

// Short lifetimes, so that what the traffic creates (sessions, denylist entries, counters)
// expires during the run: the store's key count must then stay flat.
const TOKEN_TTL_MS = 3000
const SESSION_IDLE_MS = 3000
// Also how long a logged-out session's tombstone stays (so that its id stays dead): 24 h by default.
const SESSION_ABSOLUTE_MS = 5000
const SECRET = 'soak-token-secret-of-at-least-32-bytes!'
const SESSION_SECRET = 'soak-session-secret-of-at-least-32-characters'
const RECORD = generateApiKey({ prefix: 'ak', environment: 'live' })
const RECORD_REVOKED = generateApiKey({ prefix: 'ak', environment: 'live' })
const RECORD_UNKNOWN = generateApiKey({ prefix: 'ak', environment: 'live' })
const RECORD_TYPO = RECORD.key.slice(0, 12) + (RECORD.key[12] === 'a' ? 'b' : 'a') + RECORD.key.slice(13)
const RECORDS = new Map<string, ApiKeyRecord>([
  [RECORD.id, { user: { id: 'svc' }, hash: RECORD.hash, scopes: ['orders:read'] }],
  [RECORD_REVOKED.id, { user: { id: 'old' }, hash: RECORD_REVOKED.hash, revoked: true }]
])
const tokens = { valid: '', revoked: '', expired: '' }
const sessions = { valid: '', destroyed: '' }
const json = { 'content-type': 'application/json' }
const cookieOf = (setCookie: string[]): string => (setCookie.find((c) => c.startsWith('sid=')) ?? '').split(';')[0] as string

const KEY = 'soak-key-valid-000001'
const SCENARIOS: Scenario[] = [
  { name: 'basic valid', path: '/basic', headers: { authorization: basicHeader('alice', 'pa:ss') }, expect: 200 },
  { name: 'basic wrong password', path: '/basic', headers: { authorization: basicHeader('alice', 'nope') }, expect: 401 },
  { name: 'basic unknown user', path: '/basic', headers: { authorization: basicHeader('mallory', 'pa:ss') }, expect: 401 },
  { name: 'basic malformed', path: '/basic', headers: { authorization: 'Basic !!!' }, expect: 400 },
  { name: 'basic lower-case scheme', path: '/basic', headers: { authorization: basicHeader('alice', 'pa:ss').replace('Basic', 'basic') }, expect: 200 },
  { name: 'apiKey valid', path: '/key', headers: { 'x-api-key': KEY }, expect: 200 },
  { name: 'apiKey revoked', path: '/key', headers: { 'x-api-key': 'soak-key-revoked-0002' }, expect: 401 },
  { name: 'apiKey unknown (fresh)', path: '/key', headers: () => ({ 'x-api-key': `soak-unknown-${Math.random().toString(36).slice(2)}` }), expect: 401 },
  { name: 'apiKey in query', path: `/key?api_key=${KEY}`, headers: {}, expect: 200 },
  { name: 'apiKey header and query', path: `/key?api_key=${KEY}`, headers: { 'x-api-key': KEY }, expect: 400 },
  { name: 'any-of: wrong basic + valid key', path: '/any', headers: { authorization: basicHeader('alice', 'nope'), 'x-api-key': KEY }, expect: 200 },
  { name: 'no credentials', path: '/any', headers: {}, expect: 401 },
  { name: 'CORS preflight (@fastify/cors)', method: 'OPTIONS', path: '/cors', headers: { origin: 'http://127.0.0.1', 'access-control-request-method': 'GET' }, expect: 204 },
  { name: 'CORS preflight to a guarded OPTIONS route', method: 'OPTIONS', path: '/any', headers: { origin: 'http://127.0.0.1', 'access-control-request-method': 'GET' }, expect: 401 },
  { name: 'OPTIONS without preflight', method: 'OPTIONS', path: '/any', headers: {}, expect: 401 },
  { name: 'token valid', app: 'methods', path: '/tok', headers: () => ({ authorization: `Bearer ${tokens.valid}` }), expect: 200 },
  { name: 'token revoked', app: 'methods', path: '/tok', headers: () => ({ authorization: `Bearer ${tokens.revoked}` }), expect: 401 },
  { name: 'token expired', app: 'methods', path: '/tok', headers: () => ({ authorization: `Bearer ${tokens.expired}` }), expect: 401 },
  { name: 'token tampered', app: 'methods', path: '/tok', headers: () => ({ authorization: `Bearer ${tokens.valid.slice(0, -3)}AAA` }), expect: 401 },
  { name: 'token malformed header', app: 'methods', path: '/tok', headers: { authorization: 'Bearer' }, expect: 400 },
  {
    name: 'token flow: issue, use, revoke, refused',
    app: 'methods',
    path: '',
    headers: {},
    expect: 200,
    flow: async (request) => {
      const issued = await request('POST', '/tokens', { authorization: basicHeader('alice', 'pa:ss') })
      if (issued.status !== 200) return issued.status
      const auth = { authorization: `Bearer ${(JSON.parse(issued.body) as { token: string }).token}` }
      const steps: Array<[string, string, number]> = [['GET', '/tok', 200], ['POST', '/tokens/revoke', 200], ['GET', '/tok', 401]]
      for (const [method, path, expected] of steps) {
        const { status } = await request(method, path, auth)
        if (status !== expected) return status
      }
      return 200
    }
  },
  { name: 'session valid', app: 'methods', path: '/sess', headers: () => ({ cookie: sessions.valid }), expect: 200 },
  { name: 'session destroyed', app: 'methods', path: '/sess', headers: () => ({ cookie: sessions.destroyed }), expect: 401 },
  { name: 'session forged', app: 'methods', path: '/sess', headers: { cookie: 'sid=forged.c2lnbmF0dXJl' }, expect: 401 },
  {
    name: 'session flow: login, use, logout, refused',
    app: 'methods',
    path: '',
    headers: {},
    expect: 200,
    flow: async (request) => {
      const started = await request('POST', '/login', json, '{"id":"alice"}')
      if (started.status !== 200) return started.status
      const cookie = { cookie: cookieOf(started.setCookie) }
      const steps: Array<[string, string, number]> = [['GET', '/sess', 200], ['POST', '/logout', 200], ['GET', '/sess', 401]]
      for (const [method, path, expected] of steps) {
        const { status } = await request(method, path, cookie)
        if (status !== expected) return status
      }
      return 200
    }
  },
  {
    name: 'session abandoned (expires by idle TTL)',
    app: 'methods',
    path: '',
    headers: {},
    expect: 200,
    flow: async (request) => (await request('POST', '/login', json, '{"id":"alice"}')).status
  },
  { name: 'key record valid', app: 'methods', path: '/key', headers: { 'x-api-key': RECORD.key }, expect: 200 },
  { name: 'key record revoked', app: 'methods', path: '/key', headers: { 'x-api-key': RECORD_REVOKED.key }, expect: 401 },
  { name: 'key record unknown (valid checksum)', app: 'methods', path: '/key', headers: { 'x-api-key': RECORD_UNKNOWN.key }, expect: 401 },
  { name: 'key record typo (bad checksum)', app: 'methods', path: '/key', headers: { 'x-api-key': RECORD_TYPO }, expect: 401 },
  { name: 'key record fresh random (valid checksum)', app: 'methods', path: '/key', headers: () => ({ 'x-api-key': generateApiKey({ prefix: 'ak', environment: 'live' }).key }), expect: 401 }
]

/** `increment` is not part of MultiauthStore: both stores have it, and the app's own counters use it. */
async function buildSoakApp (store: MemoryStore | RedisStore): Promise<FastifyInstance> {
  const app = await buildApp({
    store,
    basic: { verify: async (u, p) => constantTimeEqual(`${u}:${p}`, 'alice:pa:ss') ? { id: u } : null },
    apiKey: {
      query: true,
      verify: async (key) => {
        // Both paths write expiring counters, and unknown keys are fresh each time: without
        // working TTLs the key count would grow with the traffic.
        if ((await store.get(`apikey:${key}`)) !== 'active') {
          await store.increment(`failed:${key}`, USAGE_TTL_MS)
          return null
        }
        await store.increment(`usage:${key}`, USAGE_TTL_MS)
        return { id: key }
      }
    },
    // All soak traffic comes from 127.0.0.1: the failure budgets (on by default with basic) would (rightly) stop it.
    rateLimit: false
  })
  const ok = async (): Promise<string> => 'ok'
  app.get('/basic', { onRequest: app.authGuard(['basic']) }, ok)
  app.get('/key', { onRequest: app.authGuard(['apiKey']) }, ok)
  app.get('/any', { onRequest: app.authGuard(['basic', 'apiKey']) }, ok)
  // A route that handles OPTIONS itself is guarded, preflight or not: its handler would run (docs/guard.md).
  app.options('/any', { onRequest: app.authGuard(['basic', 'apiKey']) }, async (_req, reply) => await reply.code(204).send())
  // Where @fastify/cors answers preflights (its onRequest hook, scoped here), they pass before any guard.
  await app.register(async (scope) => {
    await scope.register(cors)
    scope.get('/cors', { onRequest: scope.authGuard(['basic', 'apiKey']) }, ok)
  })
  await store.set(`apikey:${KEY}`, 'active', 86_400_000)
  await store.set('apikey:soak-key-revoked-0002', 'revoked', 86_400_000)
  return app
}

/** The app with tokens, sessions, API-key records and rate limits (counters with a short window). */
async function buildMethodsApp (store: MemoryStore | RedisStore): Promise<FastifyInstance> {
  const users = new Map([['alice', { id: 'alice' }]])
  const app = await buildApp({
    store,
    basic: { verify: async (u, p) => constantTimeEqual(`${u}:${p}`, 'alice:pa:ss') ? { id: u } : null },
    token: { secret: SECRET, expiresIn: TOKEN_TTL_MS, clockTolerance: 0, revocation: true, routes: { methods: ['basic'] }, findUser: (claims) => users.get(claims.sub) ?? null },
    session: { secret: SESSION_SECRET, secure: false, maxAge: SESSION_IDLE_MS, absoluteTimeout: SESSION_ABSOLUTE_MS, findUser: (id) => users.get(id) ?? null },
    apiKey: { findKey: (id) => RECORDS.get(id) ?? null, environment: 'live' },
    // All soak traffic comes from 127.0.0.1: the failure budgets would (rightly) stop it.
    rateLimit: { perCredential: { max: 1_000_000, timeWindow: USAGE_TTL_MS }, failuresPerIp: false, failuresPerUser: false }
  })
  app.post<{ Body: { id: string } }>('/login', async (request, reply) => {
    const user = users.get(request.body.id)
    if (user === undefined) return await reply.code(404).send()
    await app.authSessions.login(request, user)
    return 'ok'
  })
  app.post('/logout', async (request) => { await app.authSessions.logout(request); return 'ok' })
  app.get('/tok', { onRequest: app.authGuard(['token']) }, async () => 'ok')
  app.get('/sess', { onRequest: app.authGuard(['session']) }, async () => 'ok')
  app.get('/key', { onRequest: app.authGuard({ methods: ['apiKey'], scopes: ['orders:read'] }) }, async () => 'ok')
  await app.ready()
  return app
}

/** Long-lived credentials the single-request scenarios use, refreshed before they expire. */
async function refreshCredentials (app: FastifyInstance): Promise<void> {
  tokens.valid = (await app.authTokens.issue({ id: 'alice' })).accessToken
  const revoked = (await app.authTokens.issue({ id: 'alice' })).accessToken
  await app.authTokens.revoke(JSON.parse(Buffer.from(revoked.split('.')[1] as string, 'base64url').toString()))
  tokens.revoked = revoked
}

/** HTTP requests sent, flows counted per request (a scenario run of a flow is several). */
let httpRequests = 0

async function request (agent: http.Agent, port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number, setCookie: string[], body: string }> {
  httpRequests++
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent, timeout: 10_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, setCookie: res.headers['set-cookie'] ?? [], body: text }))
    })
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end(body)
  })
}

async function send (agent: http.Agent, ports: { basic: number, methods: number }, scenario: Scenario): Promise<number> {
  const port = scenario.app === 'methods' ? ports.methods : ports.basic
  if (scenario.flow !== undefined) return await scenario.flow(async (m, p, h, b) => await request(agent, port, m, p, h, b))
  const headers = typeof scenario.headers === 'function' ? scenario.headers() : scenario.headers
  return (await request(agent, port, scenario.method ?? 'GET', scenario.path, headers)).status
}

async function main (): Promise<void> {
  const redis = redisAvailable ? await startRedis() : undefined
  const store = redis === undefined ? new MemoryStore() : new RedisStore({ connection: redis.url, prefix: 'soak:' })
  const keyCount = async (): Promise<number> => store instanceof RedisStore ? await store.client.dbsize() : store.size
  const app = await buildSoakApp(store)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const methodsApp = await buildMethodsApp(store)
  await methodsApp.listen({ port: 0, host: '127.0.0.1' })
  const ports = { basic: (app.server.address() as { port: number }).port, methods: (methodsApp.server.address() as { port: number }).port }
  // An expired token (issued, then outlived), a destroyed session, and tokens and a session refreshed during the run.
  await refreshCredentials(methodsApp)
  tokens.expired = tokens.valid
  const sessionAgent = new http.Agent({ keepAlive: false })
  const loginFor = async (): Promise<string> => cookieOf((await request(sessionAgent, ports.methods, 'POST', '/login', json, '{"id":"alice"}')).setCookie)
  sessions.destroyed = await loginFor()
  await request(sessionAgent, ports.methods, 'POST', '/logout', { cookie: sessions.destroyed })
  await new Promise((resolve) => setTimeout(resolve, TOKEN_TTL_MS + 1100))
  await refreshCredentials(methodsApp)
  sessions.valid = await loginFor()
  // A token lives TOKEN_TTL_MS (3 s, exp in whole seconds: at least 2 s after issue). Refreshed
  // every 250 ms, the one a request carries is at most that old plus the event-loop lag, so
  // 'token valid' keeps a margin of 1.75 s of lag before it could meet an expired token.
  const refresher = setInterval(() => { void refreshCredentials(methodsApp) }, 250)
  // The valid session is replaced every second: it is then at most 1 s old (plus lag) against
  // its 5 s absolute timeout, and kept from its 3 s idle timeout by the traffic. A failed
  // login shows as 'session valid' answering 401 once the previous one has expired.
  const sessionRefresher = setInterval(() => { loginFor().then((cookie) => { sessions.valid = cookie }, () => {}) }, 1000)
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS })

  const counts = new Map<string, Record<number, number>>(SCENARIOS.map((s) => [s.name, {}]))
  let total = 0
  let unexpected = 0
  let errors = 0
  const samples: Array<{ at: number, rssMb: number, keys: number, requests: number }> = []
  const start = Date.now()
  const deadline = start + SECONDS * 1000

  async function worker (offset: number): Promise<void> {
    for (let i = offset; Date.now() < deadline; i++) {
      const scenario = SCENARIOS[i % SCENARIOS.length] as Scenario
      try {
        const status = await send(agent, ports, scenario)
        const c = counts.get(scenario.name) as Record<number, number>
        c[status] = (c[status] ?? 0) + 1
        if (status !== scenario.expect) unexpected++
      } catch {
        errors++
      }
      total++
    }
  }
  const sampler = setInterval(() => {
    void keyCount().then((keys) => samples.push({ at: (Date.now() - start) / 1000, rssMb: process.memoryUsage().rss / 2 ** 20, keys, requests: total }))
  }, (SECONDS * 1000) / SAMPLES)
  await Promise.all(Array.from({ length: CONNECTIONS }, async (_, i) => { await worker(i * 3) }))
  clearInterval(sampler)
  clearInterval(refresher)
  clearInterval(sessionRefresher)
  const elapsed = (Date.now() - start) / 1000

  // Flat: the last third of the samples may not exceed the first third (after the first, warm-up sample) by more than the slack.
  const third = Math.max(1, Math.floor(samples.length / 3))
  const early = samples.slice(1, 1 + third)
  const late = samples.slice(-third)
  const max = (xs: number[]): number => Math.max(...xs)
  const rssEarly = max(early.map((s) => s.rssMb))
  const rssLate = max(late.map((s) => s.rssMb))
  const keysEarly = max(early.map((s) => s.keys))
  const keysLate = max(late.map((s) => s.keys))
  // What the traffic writes lives a few seconds (TTLs of 2-5 s), so the key count follows the
  // request rate, and the rate follows whatever else the machine is doing. Flat is judged on
  // keys per request per second: the seconds of traffic the store holds. Without a leak that
  // stays put whatever the rate (about 0.9 s here: not every request writes a key, and a
  // logged-out session's tombstone stays 5 s); a leak makes it grow with the run's length: one
  // leaked key per scenario cycle (1 in 32 runs) adds t/32 s, ~0.6 s early and ~1.9 s late in a
  // 60 s run (1.5 s and 2.8 s held), over 1.5x + 0.25 s (2.5 s).
  const held = (s: (typeof samples)[number]): number => {
    const before = samples[samples.indexOf(s) - 1] ?? { at: 0, requests: 0 }
    const rate = (s.requests - before.requests) / Math.max(0.001, s.at - before.at)
    return s.keys / Math.max(1, rate)
  }
  const heldEarly = max(early.map(held))
  const heldLate = max(late.map(held))
  const rssFlat = rssLate <= rssEarly * 1.25 + 16
  const keysFlat = heldLate <= heldEarly * 1.5 + 0.25

  console.log(`soak: ${elapsed.toFixed(0)} s, ${CONNECTIONS} connections, store ${store instanceof RedisStore ? 'RedisStore (real redis-server)' : 'MemoryStore'}`)
  console.table(Object.fromEntries([...counts].map(([name, c]) => [name, c])))
  console.table(samples.map((s) => ({ 't (s)': s.at.toFixed(0), 'RSS (MB)': s.rssMb.toFixed(1), 'store keys': s.keys, requests: s.requests })))
  const figures = {
    seconds: Number(elapsed.toFixed(1)),
    scenarioRuns: total,
    httpRequests,
    httpRequestsPerSecond: Math.round(httpRequests / elapsed),
    unexpectedStatuses: unexpected,
    transportErrors: errors,
    rssMb: { early: Number(rssEarly.toFixed(1)), late: Number(rssLate.toFixed(1)), flat: rssFlat },
    storeKeys: { early: keysEarly, late: keysLate, secondsOfTrafficHeld: { early: Number(heldEarly.toFixed(2)), late: Number(heldLate.toFixed(2)) }, flat: keysFlat }
  }
  console.log('SOAK ' + JSON.stringify(figures))

  agent.destroy()
  sessionAgent.destroy()
  await app.close()
  await methodsApp.close()
  if (store instanceof RedisStore) await store.close()
  await redis?.stop()
  const pass = unexpected === 0 && errors === 0 && rssFlat && keysFlat && total > 0
  console.log(pass ? 'soak: PASS' : 'soak: FAIL')
  process.exitCode = pass ? 0 : 1
}

await main()
