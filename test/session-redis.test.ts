import t from 'tap'
import { createHash } from 'node:crypto'
import { RedisStore } from '../src/index.js'
import { retryUntil } from './helpers/phased-load.js'
import { eachTopology } from './helpers/redis-topology.js'
import { cookieFrom, SESSION_SECRET, sessionApp } from './helpers/session-app.js'
import type { SessionTestUser } from './helpers/session-app.js'

eachTopology(t, 'sessions in real Redis, shared by two instances', async (t, redis) => {
  const users = new Map<string, SessionTestUser>([['u1', { id: 'u1', name: 'Alice' }]])
  const stores: RedisStore[] = []
  t.teardown(async () => { for (const s of stores) await s.close() })
  async function instance (): Promise<Awaited<ReturnType<typeof sessionApp>>> {
    const store = new RedisStore(redis.storeOptions({ commandTimeout: 300 }))
    stores.push(store)
    const app = await sessionApp(users, { plugin: { store } })
    t.teardown(() => app.close())
    return app
  }
  const a = await instance()
  const b = await instance()

  t.test('a session started on A authenticates on B; logout on A → refused on B too', async (t) => {
    const cookie = cookieFrom(await a.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
    t.equal((await b.inject({ url: '/me', headers: { cookie } })).statusCode, 200, 'B knows the session')
    t.equal((await a.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 200)
    t.equal((await b.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'B refuses the old cookie')
    t.equal((await a.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'A refuses it as well')
  })

  t.test('sessions survive an application restart', async (t) => {
    const cookie = cookieFrom(await a.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
    const restarted = await instance()
    t.equal((await restarted.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
  })

  t.test('Redis holds a hash of the session id with a TTL, never the id itself', async (t) => {
    const cookie = cookieFrom(await a.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid') as string
    const sessionId = decodeURIComponent(cookie.slice('sid='.length)).split('.')[0] as string
    const client = (stores[0] as RedisStore).client
    const keys = await redis.keys('multiauth:sess:*') // on every primary: a Cluster spreads them over its masters
    t.ok(keys.length > 0)
    t.notOk(keys.some((k) => k.includes(sessionId)), 'no raw session id in key names')
    const key = `multiauth:sess:${createHash('sha256').update(sessionId).digest('base64url')}`
    t.ok(keys.includes(key))
    const ttl = await client.pttl(key)
    t.ok(ttl > 0 && ttl <= 2 * 3_600_000, `TTL ${ttl} ms follows the idle timeout`)
    t.same(JSON.parse(await client.get(key) as string).multiauth.u, 'u1')
  })

  t.test('Redis down → 503 (fail closed), back → the session works again', async (t) => {
    const cookie = cookieFrom(await a.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
    await redis.down()
    const down = await b.inject({ url: '/me', headers: { cookie } })
    t.equal(down.statusCode, 503)
    t.equal(down.json().code, 'FST_MULTIAUTH_STORE_UNAVAILABLE')
    await redis.up()
    // No persistence: the restarted server is empty, so the session is gone (401), not a crash.
    // Bounded wait for ioredis to reconnect (its backoff is at most 2 s): a 503 until then, never a 200.
    const seen = new Set<number>()
    await retryUntil('a 401 after the restart', async () => {
      const status = (await b.inject({ url: '/me', headers: { cookie } })).statusCode
      seen.add(status)
      return status === 401
    }, 30_000)
    t.same([...seen].filter((s) => s !== 401 && s !== 503), [], 'only 503 until reconnected, then 401')
    const again = cookieFrom(await b.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
    t.equal((await a.inject({ url: '/me', headers: { cookie: again } })).statusCode, 200)
  })
})

t.test('secret rotation: a cookie signed with the old secret still works', async (t) => {
  const users = new Map<string, SessionTestUser>([['u1', { id: 'u1', name: 'Alice' }]])
  const { MemoryStore } = await import('../src/index.js')
  const store = new MemoryStore()
  const old = await sessionApp(users, { plugin: { store } })
  const cookie = cookieFrom(await old.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid')
  const rotated = await sessionApp(users, { plugin: { store }, session: { secret: ['a-brand-new-secret-of-more-than-32-chars', SESSION_SECRET] } })
  t.equal((await rotated.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
  const fresh = await sessionApp(users, { plugin: { store }, session: { secret: 'a-brand-new-secret-of-more-than-32-chars' } })
  t.equal((await fresh.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'once the old secret is dropped, its cookies are refused')
})
