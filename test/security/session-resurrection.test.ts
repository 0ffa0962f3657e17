// [Issue 18, finding 1 (high): logout is final] A request that loaded the session before a
// logout (or before authSessions.login() regenerated the id) used to save it again in @fastify/session's
// rolling onSend save, which overwrote unconditionally: the destroyed id authenticated again
// with a fresh idle TTL. An attacker holding a stolen cookie controls the timing with a request
// whose body trickles in. These tests failed before the fix (the old cookie got 200 after the
// slow request finished, and Redis held the session again with a 2-hour PTTL). Now a destroyed
// id holds a tombstone and every save is conditional on it (atomically: a Lua script in Redis,
// a synchronous check in the in-process store).
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { MemoryStore, RedisStore } from '../../src/index.js'
import type { MultiauthStore } from '../../src/index.js'
import { eachTopology } from '../helpers/redis-topology.js'
import { sessionStoreKey, slowPost } from '../helpers/slow-request.js'
import { cookieFrom, SESSION_SECRET } from '../helpers/session-app.js'

interface Instance { app: FastifyInstance, port: number, loaded: (url: string) => Promise<void>, release: () => void }

/**
 * An app with a login, a logout, a guarded /me, and two ways to hold a request open while its
 * session is loaded: POST /slow (its body trickles in over a raw socket) and GET /gated (its
 * handler waits for `release()`).
 */
async function instance (t: Test, store: MultiauthStore): Promise<Instance> {
  const app = Fastify()
  await app.register(multiauth, { store, session: { secret: SESSION_SECRET, secure: false, findUser: (id) => ({ id }) } })
  const waiting = new Map<string, () => void>()
  const loaded = new Map<string, Promise<void>>()
  for (const url of ['/slow', '/gated']) loaded.set(url, new Promise((resolve) => waiting.set(url, resolve)))
  // After @fastify/session's own onRequest hook: the session of this request is loaded now.
  app.addHook('onRequest', async (request) => { waiting.get(request.url)?.() })
  let open: () => void = () => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  app.post('/login', async (request) => { await app.authSessions.login(request, { id: 'ann' }); return 'ok' })
  app.post('/logout', async (request) => { await app.authSessions.logout(request); return 'ok' })
  app.get('/me', { onRequest: app.authGuard(['session']) }, async (request) => request.auth?.user ?? null)
  app.post('/slow', async () => 'done')
  app.get('/gated', async () => { await gate; return 'done' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return {
    app,
    port: (app.server.address() as { port: number }).port,
    loaded: async (url) => await loaded.get(url),
    release: () => open()
  }
}


eachTopology(t, 'two instances sharing real Redis: a slow request started before logout cannot bring the session back', async (t, redis) => {
  const stores = [new RedisStore(redis.storeOptions()), new RedisStore(redis.storeOptions())]
  t.teardown(async () => { for (const s of stores) await s.close() })
  const a = await instance(t, stores[0] as RedisStore)
  const b = await instance(t, stores[1] as RedisStore)

  const cookie = cookieFrom(await a.app.inject({ method: 'POST', url: '/login' }), 'sid') as string
  t.equal((await b.app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, 'the stolen cookie works on B')

  const slow = slowPost('127.0.0.1', a.port, cookie)
  t.teardown(() => slow.socket.destroy())
  await a.loaded('/slow') // A loaded the session; the body is still coming
  t.equal((await b.app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 200, 'the victim logs out on B')
  t.equal((await b.app.inject({ url: '/me', headers: { cookie } })).statusCode, 401)
  const response = await slow.finish()
  t.match(response, /^HTTP\/1\.1 200/, 'the slow request itself completes')

  t.equal((await b.app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'B: still logged out after the slow request finished')
  t.equal((await a.app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'A: too')
  const client = (stores[0] as RedisStore).client
  t.equal(await client.get(sessionStoreKey(cookie)), '!destroyed', 'Redis holds the tombstone, not the session')
  const pttl = await client.pttl(sessionStoreKey(cookie))
  t.ok(pttl > 0 && pttl <= 24 * 3_600_000, `the tombstone expires with the absolute timeout (PTTL ${pttl} ms)`)
})

t.test('in-process store: a request in flight during logout, and during authSessions.login() regenerating the id, saves nothing', async (t) => {
  const app = await instance(t, new MemoryStore())
  const cookie = cookieFrom(await app.app.inject({ method: 'POST', url: '/login' }), 'sid') as string

  // Real concurrency: the gated request holds its loaded session while logout completes.
  const inFlight = app.app.inject({ url: '/gated', headers: { cookie } })
  await app.loaded('/gated')
  const out = await app.app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
  t.equal(out.statusCode, 200)
  app.release()
  t.equal((await inFlight).statusCode, 200)
  t.equal((await app.app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'the logged-out cookie stays dead')
})

t.test('authSessions.login() regenerating the id: the old id never authenticates again, whatever was in flight', async (t) => {
  for (const [name, store] of [['MemoryStore', () => new MemoryStore()]] as const) {
    const app = await instance(t, store())
    const old = cookieFrom(await app.app.inject({ method: 'POST', url: '/login' }), 'sid') as string
    const inFlight = app.app.inject({ url: '/gated', headers: { cookie: old } })
    await app.loaded('/gated')
    // A second login with the same cookie (a re-login, an OAuth login): the id is regenerated.
    const fresh = cookieFrom(await app.app.inject({ method: 'POST', url: '/login', headers: { cookie: old } }), 'sid') as string
    t.not(fresh, old, `${name}: a new id`)
    app.release()
    await inFlight
    t.equal((await app.app.inject({ url: '/me', headers: { cookie: old } })).statusCode, 401, `${name}: the old id stays dead`)
    t.equal((await app.app.inject({ url: '/me', headers: { cookie: fresh } })).statusCode, 200, `${name}: the new one works`)
  }
})

t.test('a custom store without setUnlessEqual still never resurrects after the tombstone is written (read-then-write)', async (t) => {
  const inner = new MemoryStore()
  const custom: MultiauthStore = {
    get: async (k) => await inner.get(k),
    set: async (k, v, ttl) => { await inner.set(k, v, ttl) },
    delete: async (k) => { await inner.delete(k) }
  }
  const app = await instance(t, custom)
  const cookie = cookieFrom(await app.app.inject({ method: 'POST', url: '/login' }), 'sid') as string
  const inFlight = app.app.inject({ url: '/gated', headers: { cookie } })
  await app.loaded('/gated')
  t.equal((await app.app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 200)
  app.release()
  await inFlight
  t.equal((await app.app.inject({ url: '/me', headers: { cookie } })).statusCode, 401)
})
