// store:unavailable and store:recovered, per store instance: the first failed call of a store
// publishes `unavailable` (a timeout or an error), later failures nothing, the first call that
// succeeds after them `recovered` with how long the store was unavailable. Real Redis (standalone,
// Cluster and Sentinel: every data node) paused (SIGSTOP: a hung Redis) and killed (connection
// refused), then resumed and restarted; an application's own MultiauthStore and @fastify/session store.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { RedisStore } from '../src/index.js'
import type { MultiauthOptions, MultiauthStore } from '../src/index.js'
import { recordEvents } from './helpers/events.js'
import type { RecordedEvent } from './helpers/events.js'
import { eachTopology } from './helpers/redis-topology.js'
import { cookieFrom, SESSION_SECRET } from './helpers/session-app.js'

const SECRET = 'a-token-secret-of-at-least-32-bytes!!'
const events = recordEvents(t)
const storeEvents = (): RecordedEvent[] => events.take().filter((event) => event.name.startsWith('store:'))

/** Bearer tokens with revocation on: every request reads the store (the revocation keys). */
async function tokenApp (t: Test, store: MultiauthStore, extra: Partial<MultiauthOptions> = {}): Promise<{ app: FastifyInstance, get: () => Promise<number> }> {
  const app = Fastify()
  await app.register(multiauth, { store, token: { secret: SECRET, revocation: true, findUser: (claims) => ({ id: claims.sub }) }, ...extra })
  app.get('/me', { onRequest: app.authGuard(['token']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const { accessToken } = await app.authTokens.issue({ id: 'ann' })
  return { app, get: async () => (await app.inject({ url: '/me', headers: { authorization: `Bearer ${accessToken}` } })).statusCode }
}

eachTopology(t, 'RedisStore: a hung Redis, a dead one, each published once, and each recovery', async (t, redis) => {
  const commandTimeout = 500
  const store = new RedisStore(redis.storeOptions({ commandTimeout }))
  const { get } = await tokenApp(t, store)
  t.equal(await get(), 200)
  t.strictSame(storeEvents(), [], 'a store that answers: nothing')

  redis.pause()
  t.teardown(() => { redis.resume() })
  t.equal(await get(), 503, 'Redis hung: 503')
  t.strictSame(storeEvents(), [{ name: 'store:unavailable', payload: { store: 'RedisStore', cause: 'timeout' } }])
  t.equal(await get(), 503)
  t.strictSame(storeEvents(), [], 'a second failure: nothing more')
  redis.resume()
  t.equal(await get(), 200, 'Redis answers again')
  const [recovered] = storeEvents()
  t.equal(recovered?.name, 'store:recovered')
  const unavailableMs = (recovered?.payload as { unavailableMs: number }).unavailableMs
  t.strictSame(recovered?.payload, { store: 'RedisStore', unavailableMs })
  // From the first failure to this success, a whole second request waited its commandTimeout
  // (less a few ms: Node's timers are kept in whole milliseconds).
  t.ok(Number.isInteger(unavailableMs) && unavailableMs >= commandTimeout - 5, `unavailableMs ${unavailableMs} ≥ ${commandTimeout} - 5`)
  t.equal(await get(), 200)
  t.strictSame(storeEvents(), [], 'a success while available: nothing')

  await redis.down()
  t.equal(await get(), 503, 'Redis gone: 503')
  // Standalone and Sentinel: an error — the closed connection's, or, once the client knows it is
  // reconnecting, the store's own (it holds the command for commandTimeout and drops it unsent,
  // src/stores/redis-ready.ts; that wait's timer fires before the timeout's). A Cluster: an error
  // or a timeout, depending on which of its connections noticed the outage first. Either, once.
  if (redis.name === 'cluster') {
    const events = storeEvents()
    t.equal(events.length, 1, 'every master gone: published once')
    t.equal(events[0]?.name, 'store:unavailable')
    t.ok(['timeout', 'error'].includes((events[0]?.payload as { cause?: string }).cause ?? ''), `cause ${JSON.stringify(events[0]?.payload)}: a timeout or an error`)
  } else t.strictSame(storeEvents(), [{ name: 'store:unavailable', payload: { store: 'RedisStore', cause: 'error' } }], 'connection refused: an error, not a timeout')
  t.equal(await get(), 503)
  t.strictSame(storeEvents(), [])
  // Not events.once: it rejects on the 'error' events the client emits while it reconnects (a
  // Cluster's "Failed to refresh slots cache" while its nodes start).
  const reconnected = new Promise((resolve) => { store.client.once('ready', resolve) })
  await redis.up()
  await reconnected
  t.equal(await get(), 200, 'Redis back: service resumes without a restart')
  t.match(storeEvents(), [{ name: 'store:recovered', payload: { store: 'RedisStore', unavailableMs: Number } }])
})

/** An application's own store: a Map, which can be made to fail or to hang. */
class FlakyStore implements MultiauthStore {
  mode: 'ok' | 'fail' | 'hang' = 'ok'
  readonly data = new Map<string, string>()
  async #answer<T> (value: () => T): Promise<T> {
    if (this.mode === 'fail') throw new Error('ECONNREFUSED 10.0.0.7:5432 (user=app password=hunter2)')
    if (this.mode === 'hang') return await new Promise<never>(() => {})
    return value()
  }

  async get (key: string): Promise<string | null> { return await this.#answer(() => this.data.get(key) ?? null) }
  async set (key: string, value: string): Promise<void> { await this.#answer(() => this.data.set(key, value)) }
  async delete (key: string): Promise<void> { await this.#answer(() => this.data.delete(key)) }
}

t.test('a custom MultiauthStore: an error, a timeout (callbackTimeout), named by its class; one health per store object', async (t) => {
  const store = new FlakyStore()
  const first = await tokenApp(t, store, { callbackTimeout: 200 })
  const second = await tokenApp(t, store, { callbackTimeout: 200 })
  t.equal(await first.get(), 200)
  storeEvents()

  store.mode = 'fail'
  t.equal(await first.get(), 503)
  t.strictSame(storeEvents(), [{ name: 'store:unavailable', payload: { store: 'FlakyStore', cause: 'error' } }])
  t.equal(await second.get(), 503, 'another app on the same store object')
  t.strictSame(storeEvents(), [], 'the same store: already known to be unavailable')
  store.mode = 'ok'
  t.equal(await second.get(), 200)
  t.match(storeEvents(), [{ name: 'store:recovered', payload: { store: 'FlakyStore', unavailableMs: Number } }])

  store.mode = 'hang'
  t.equal(await first.get(), 503)
  t.strictSame(storeEvents(), [{ name: 'store:unavailable', payload: { store: 'FlakyStore', cause: 'timeout' } }])
  store.mode = 'ok'
  t.equal(await first.get(), 200)
  t.match(storeEvents(), [{ name: 'store:recovered' }])

  // A plain object as the store: no class name to give.
  const data = new Map<string, string>()
  let down = false
  const check = (): void => { if (down) throw new Error('down') }
  const plain = await tokenApp(t, {
    get: async (key) => { check(); return data.get(key) ?? null },
    set: async (key, value) => { check(); data.set(key, value) },
    delete: async (key) => { check(); data.delete(key) }
  })
  down = true
  t.equal(await plain.get(), 503)
  t.strictSame(storeEvents(), [{ name: 'store:unavailable', payload: { store: 'custom', cause: 'error' } }])
})

/** A @fastify/session (connect-style) store of the application's. */
class FlakySessionStore {
  failing = false
  readonly sessions = new Map<string, unknown>()
  set (id: string, session: unknown, callback: (err?: unknown) => void): void {
    if (this.failing) { callback(new Error('session db down')); return }
    this.sessions.set(id, session)
    callback()
  }

  get (id: string, callback: (err: unknown, session?: unknown) => void): void {
    if (this.failing) { callback(new Error('session db down')); return }
    callback(null, this.sessions.get(id) ?? null)
  }

  destroy (id: string, callback: (err?: unknown) => void): void {
    this.sessions.delete(id)
    callback()
  }
}

t.test('an application\'s session.store', async (t) => {
  const sessions = new FlakySessionStore()
  const app = Fastify()
  await app.register(multiauth, { session: { secret: SESSION_SECRET, secure: false, store: sessions, findUser: (id) => ({ id }) } })
  app.post('/login', async (request) => { await app.authSessions.login(request, { id: 'ann' }); return 'ok' })
  app.get('/me', { onRequest: app.authGuard(['session']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login' }), 'sid') as string
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
  storeEvents()
  sessions.failing = true
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 503)
  t.strictSame(storeEvents(), [{ name: 'store:unavailable', payload: { store: 'FlakySessionStore', cause: 'error' } }])
  sessions.failing = false
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
  t.match(storeEvents(), [{ name: 'store:recovered', payload: { store: 'FlakySessionStore', unavailableMs: Number } }])
})
