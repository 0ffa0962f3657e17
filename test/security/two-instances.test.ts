// Two application instances behind one real Redis (standalone, Cluster and Sentinel), under
// concurrent load over real HTTP (loopback): sessions started on A are valid on B, a token revoked through A is
// refused by B on the very next request, and the rate-limit budgets are shared and exact
// (N requests with a budget of M across both instances → exactly M admitted, each request
// counted once). Sequential versions: test/session-redis.test.ts, test/token-redis.test.ts,
// test/redis-instances.test.ts.
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { generateApiKey, RedisStore } from '../../src/index.js'
import type { ApiKeyRecord } from '../../src/index.js'
import { basicHeader } from '../helpers/app.js'
import { eachTopology } from '../helpers/redis-topology.js'
import { SESSION_SECRET } from '../helpers/session-app.js'

const TOKEN_SECRET = 'two-instances-secret-of-32-bytes-plus!'
const CONCURRENCY = 64

eachTopology(t, '[design: stores, ASVS 4.0.3 V3.3.1, V2.2.1] two instances on one Redis under concurrent load', async (t, redis) => {
  const users = new Map(Array.from({ length: 200 }, (_, i) => [`u${i}`, { id: `u${i}` }]))
  const keys = new Map<string, ApiKeyRecord<{ id: string }>>()
  let checks = 0

  async function instance (): Promise<{ app: FastifyInstance, base: string, store: RedisStore }> {
    const store = new RedisStore(redis.storeOptions({ commandTimeout: 2000 }))
    const app = Fastify()
    await app.register(multiauth, {
      store,
      basic: { verify: async (u, p) => { checks++; return p === 'right' ? users.get(u) ?? null : null } },
      token: { secret: TOKEN_SECRET, revocation: true, findUser: (claims) => users.get(claims.sub) ?? null },
      session: { secret: SESSION_SECRET, secure: false, findUser: (id) => users.get(id) ?? null },
      apiKey: { findKey: (id) => keys.get(id) ?? null },
      // All clients share 127.0.0.1 here: the per-IP budget is out of the way; the per-user one is tested.
      rateLimit: { perCredential: { max: 100_000 }, failuresPerIp: { max: 100_000 }, failuresPerUser: { max: 10, timeWindow: 60_000 } }
    })
    app.post<{ Body: { id: string } }>('/login', async (request) => { await app.authSessions.login(request, users.get(request.body.id) as { id: string }); return 'ok' })
    app.post('/logout', async (request) => { await app.authSessions.logout(request); return 'ok' })
    app.get('/sess', { onRequest: app.authGuard(['session']) }, async (request) => request.auth?.user ?? null)
    app.get('/tok', { onRequest: app.authGuard(['token']) }, async (request) => request.auth?.user ?? null)
    app.post('/revoke', { onRequest: app.authGuard(['token']) }, async (request) => {
      if (request.auth?.method !== 'token') throw new Error('the token guard admitted a request without a token')
      await app.authTokens.revoke(request.auth.claims)
      return 'revoked'
    })
    app.get('/key', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
    app.get('/basic', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
    await app.listen({ port: 0, host: '127.0.0.1' })
    t.teardown(async () => { await app.close(); await store.close() })
    return { app, base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, store }
  }
  const a = await instance()
  const b = await instance()
  const http = async (url: string, init: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, cookie: string | undefined }> => {
    const res = await fetch(url, { ...init, redirect: 'manual' })
    await res.arrayBuffer()
    const setCookie = res.headers.getSetCookie().find((c) => c.startsWith('sid='))
    return { status: res.status, cookie: setCookie?.split(';')[0] }
  }
  /** Runs `jobs` with at most CONCURRENCY in flight. */
  async function pool<T> (jobs: Array<() => Promise<T>>): Promise<T[]> {
    const results: T[] = new Array(jobs.length)
    let next = 0
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, jobs.length) }, async () => {
      while (next < jobs.length) {
        const i = next++
        results[i] = await (jobs[i] as () => Promise<T>)()
      }
    }))
    return results
  }
  const json = { 'content-type': 'application/json' }

  t.test('200 concurrent logins on A: every session is valid on B, as the right user; logout on B ends it on A', async (t) => {
    const ids = [...users.keys()]
    const cookies = await pool(ids.map((id) => async () => (await http(`${a.base}/login`, { method: 'POST', headers: json, body: JSON.stringify({ id }) })).cookie as string))
    t.equal(new Set(cookies).size, ids.length, 'one distinct session per login')
    const onB = await pool(cookies.map((cookie) => async () => {
      const res = await fetch(`${b.base}/sess`, { headers: { cookie } })
      return { status: res.status, user: res.status === 200 ? (await res.json() as { id: string }).id : (await res.arrayBuffer(), undefined) }
    }))
    t.same(onB.map((r) => r.status), ids.map(() => 200), 'all 200 on B')
    t.same(onB.map((r) => r.user), ids, 'each session is its own user')
    const half = cookies.slice(0, 100)
    await pool(half.map((cookie) => async () => await http(`${b.base}/logout`, { method: 'POST', headers: { cookie } })))
    const afterLogout = await pool(cookies.map((cookie) => async () => (await http(`${a.base}/sess`, { headers: { cookie } })).status))
    t.same(afterLogout, [...half.map(() => 401), ...cookies.slice(100).map(() => 200)], 'logged out on B → 401 on A; the others still 200')
  })

  t.test('100 tokens revoked through A concurrently: each refused by B on the very next request', async (t) => {
    const tokens = await Promise.all([...users.keys()].slice(0, 100).map(async (id) => (await a.app.authTokens.issue({ id })).accessToken))
    // Background load on B with the same tokens, while the revocations happen.
    const results = await pool(tokens.map((token) => async () => {
      const auth = { authorization: `Bearer ${token}` }
      const before = (await http(`${b.base}/tok`, { headers: auth })).status
      const revoked = (await http(`${a.base}/revoke`, { method: 'POST', headers: auth })).status
      const next = (await http(`${b.base}/tok`, { headers: auth })).status
      return [before, revoked, next]
    }))
    t.same(results, tokens.map(() => [200, 200, 401]), 'B: 200 before, A: revoked, B: 401 on the next request — for every token')
  })

  t.test('a key budget of 50 across both instances: 300 concurrent requests → exactly 50 admitted, each counted once', async (t) => {
    const k = generateApiKey({ prefix: 'ak', environment: 'live' })
    keys.set(k.id, { user: { id: 'svc' }, hash: k.hash, rateLimit: { max: 50, timeWindow: 60_000 } })
    const statuses = await pool(Array.from({ length: 300 }, (_, i) => async () => (await http(`${(i % 2 === 0 ? a : b).base}/key`, { headers: { 'x-api-key': k.key } })).status))
    const by = statuses.reduce<Record<number, number>>((acc, s) => { acc[s] = (acc[s] ?? 0) + 1; return acc }, {})
    t.comment(JSON.stringify(by))
    t.equal(by[200], 50, 'exactly the budget admitted')
    t.equal(by[429], 250, 'every other request 429')
    t.equal(await a.store.client.get(`multiauth:rl:key:${k.id}`), '300', 'the shared counter saw each request exactly once')
  })

  t.test('[issue 13.3] failure budgets across both instances: 200 concurrent guesses at a budget of 10 → exactly 10 password checks', async (t) => {
    checks = 0
    const guesses = await pool(Array.from({ length: 200 }, (_, i) => async () => (await http(`${(i % 2 === 0 ? a : b).base}/basic`, { headers: { authorization: basicHeader('u7', `guess${i}`) } })).status))
    const by = guesses.reduce<Record<number, number>>((acc, s) => { acc[s] = (acc[s] ?? 0) + 1; return acc }, {})
    t.comment(`per-user budget 10, two instances, 200 concurrent guesses: ${JSON.stringify(by)}, password checks ${checks}`)
    // Before: each instance admitted up to its own budget (checks up to 20).
    t.equal(checks, 10, 'the two instances together checked exactly the budget')
    t.equal(by[401], 10)
    t.equal(by[429], 190, 'every other guess refused before its password was checked')
    const counter = 'multiauth:rl:fail:user:' + (await import('node:crypto')).createHash('sha256').update('u7').digest('base64url').slice(0, 22)
    t.same(await a.store.client.hgetall(counter), { f: String(checks), p: '0' }, 'each refused guess counted once in Redis, no slot left held')
  })
})
