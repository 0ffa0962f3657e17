// Soak: bounded mixed valid/invalid traffic on loopback across every method that exists,
// checking that every response has the expected status and that RSS and the store's key
// count stay flat. Prints its figures; exits 1 on any unexpected status or growth.
//
//   SOAK_SECONDS=60 npx tsx bench/soak.ts      (default 600 s; CI uses 60)
//   SOAK_CONNECTIONS=8                         (concurrent keep-alive clients, default 8)
//
// To add a method's traffic (token, session, API-key records), configure it in
// `buildSoakApp` and append entries to SCENARIOS: { name, path, headers, expect }.
import http from 'node:http'
import type { FastifyInstance } from 'fastify'
import { constantTimeEqual, MemoryStore, RedisStore } from '../src/index.js'
import type { MultiauthStore } from '../src/index.js'
import { basicHeader, buildApp } from '../test/helpers/app.js'
import { redisAvailable, startRedis } from '../test/helpers/redis.js'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 600)
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 8)
const SAMPLES = 12
const USAGE_TTL_MS = 2000 // per-key usage and failure counters: they must expire, so the key count stays flat

interface Scenario {
  name: string
  method?: 'GET' | 'OPTIONS'
  path: string
  /** A function when each request needs fresh credentials (tokens, session cookies). */
  headers: Record<string, string> | (() => Record<string, string>)
  expect: number
}

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
  { name: 'CORS preflight', method: 'OPTIONS', path: '/any', headers: { origin: 'http://127.0.0.1', 'access-control-request-method': 'GET' }, expect: 204 },
  { name: 'OPTIONS without preflight', method: 'OPTIONS', path: '/any', headers: {}, expect: 401 }
]

async function buildSoakApp (store: MultiauthStore): Promise<FastifyInstance> {
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
    }
  })
  const ok = async (): Promise<string> => 'ok'
  app.get('/basic', { onRequest: app.authGuard(['basic']) }, ok)
  app.get('/key', { onRequest: app.authGuard(['apiKey']) }, ok)
  app.get('/any', { onRequest: app.authGuard(['basic', 'apiKey']) }, ok)
  app.options('/any', { onRequest: app.authGuard(['basic', 'apiKey']) }, async (_req, reply) => await reply.code(204).send())
  await store.set(`apikey:${KEY}`, 'active', 86_400_000)
  await store.set('apikey:soak-key-revoked-0002', 'revoked', 86_400_000)
  return app
}

async function send (agent: http.Agent, port: number, scenario: Scenario): Promise<number> {
  const headers = typeof scenario.headers === 'function' ? scenario.headers() : scenario.headers
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: scenario.path, method: scenario.method ?? 'GET', headers, agent, timeout: 10_000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end()
  })
}

async function main (): Promise<void> {
  const redis = redisAvailable ? await startRedis() : undefined
  const store = redis === undefined ? new MemoryStore() : new RedisStore({ connection: redis.url, prefix: 'soak:' })
  const keyCount = async (): Promise<number> => store instanceof RedisStore ? await store.client.dbsize() : store.size
  const app = await buildSoakApp(store)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
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
        const status = await send(agent, port, scenario)
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
  const rssFlat = rssLate <= rssEarly * 1.25 + 16
  const keysFlat = keysLate <= keysEarly * 1.5 + 10

  console.log(`soak: ${elapsed.toFixed(0)} s, ${CONNECTIONS} connections, store ${store instanceof RedisStore ? 'RedisStore (real redis-server)' : 'MemoryStore'}`)
  console.table(Object.fromEntries([...counts].map(([name, c]) => [name, c])))
  console.table(samples.map((s) => ({ 't (s)': s.at.toFixed(0), 'RSS (MB)': s.rssMb.toFixed(1), 'store keys': s.keys, requests: s.requests })))
  const figures = {
    seconds: Number(elapsed.toFixed(1)),
    requests: total,
    requestsPerSecond: Math.round(total / elapsed),
    unexpectedStatuses: unexpected,
    transportErrors: errors,
    rssMb: { early: Number(rssEarly.toFixed(1)), late: Number(rssLate.toFixed(1)), flat: rssFlat },
    storeKeys: { early: keysEarly, late: keysLate, flat: keysFlat }
  }
  console.log('SOAK ' + JSON.stringify(figures))

  agent.destroy()
  await app.close()
  if (store instanceof RedisStore) await store.close()
  await redis?.stop()
  const pass = unexpected === 0 && errors === 0 && rssFlat && keysFlat && total > 0
  console.log(pass ? 'soak: PASS' : 'soak: FAIL')
  process.exitCode = pass ? 0 : 1
}

await main()
