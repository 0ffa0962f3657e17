// A write the client was told failed (503) during a Redis outage must not run later, once Redis is
// back. An ioredis client that is (re)connecting queues the commands it is given and sends them when
// it reconnects — a Cluster client for as long as the outage lasts — so before the ReadyGate
// (src/stores/redis-ready.ts) every write answered 503 during a full Cluster outage ran afterwards:
// here the budget slots of three Basic logins answered 503 would have held the failure budget
// full (slots in flight that no attempt gives back), and the right password would then answer 503
// (no slot within callbackTimeout) until the window ended.
// On every topology (standalone, Cluster, Sentinel); no time window: each step waits for an event.
import t from 'tap'
import Fastify from 'fastify'
import multiauth, { RedisStore, StoreUnavailableError } from '../../src/index.js'
import type { RedisStoreOptions } from '../../src/index.js'
import { basicHeader } from '../helpers/app.js'
import { retryUntil } from '../helpers/phased-load.js'
import { eachTopology } from '../helpers/redis-topology.js'

const WRITES = 50
const BUDGET = 3

eachTopology(t, '[ASVS 4.0.3 V4.1.5 fail securely] a write answered 503 during a Redis outage never runs after it', async (t, redis) => {
  const store = new RedisStore(redis.storeOptions())
  const app = Fastify()
  await app.register(multiauth, {
    store,
    basic: { verify: (username, password) => password === 'right' ? { id: username } : null },
    rateLimit: { failuresPerIp: { max: BUDGET, timeWindow: '10m' }, failuresPerUser: { max: BUDGET, timeWindow: '10m' } }
  })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  t.teardown(async () => { await app.close(); await store.close() })
  await app.ready()
  const login = async (): Promise<number> => (await app.inject({ url: '/me', headers: { authorization: basicHeader('ann', 'right') } })).statusCode
  t.equal(await login(), 200, 'the right password, Redis up: 200')

  await redis.down()
  // From the moment the client has seen the closed connections, an ioredis client queues what it is given.
  await retryUntil('the client to see the outage', async () => store.client.status !== 'ready', 30_000, 5)
  const keys = Array.from({ length: WRITES }, (_, i) => `outage-write:${i}`)
  const readyListeners = store.client.listenerCount('ready')
  const pending = Promise.allSettled(keys.map(async (key) => { await store.set(key, 'ran after the outage', 600_000) }))
  t.equal(store.client.listenerCount('ready'), readyListeners, `${WRITES} writes waiting for the client add no 'ready' listener each (one serves them all)`)
  const writes = await pending
  t.equal(writes.filter((w) => w.status === 'rejected' && w.reason instanceof StoreUnavailableError).length, WRITES, `${WRITES} writes during the outage: each refused with StoreUnavailableError (503)`)
  for (let i = 0; i < BUDGET; i++) t.equal(await login(), 503, `login ${i + 1} of ${BUDGET} during the outage: 503 (its budget slot could not be taken)`)

  await redis.up()
  await retryUntil('the store to answer again', async () => await store.get('probe').then(() => true, () => false), 60_000)
  // A command a client had queued is sent when it reconnects, before the reads below on the same
  // connections: had one been kept, its key would be there now.
  const ran = (await Promise.all(keys.map(async (key) => await store.get(key)))).filter((value) => value !== null).length
  t.comment(`writes answered 503 during the outage that ran after it: ${ran} of ${WRITES}`)
  t.equal(ran, 0, `none of the ${WRITES} writes answered 503 ran after the outage`)
  t.equal(await login(), 200, 'the right password after the outage: 200 (the refused logins hold no budget slot)')
}, { persist: true })

eachTopology(t, 'a client that connects lazily: the first command connects it, then runs', async (t, redis) => {
  const options = redis.storeOptions()
  const lazy: RedisStoreOptions = options.cluster !== undefined
    ? { cluster: { nodes: options.cluster.nodes, options: { lazyConnect: true } } }
    : { connection: typeof options.connection === 'string' ? { port: Number(new URL(options.connection).port), host: '127.0.0.1', lazyConnect: true } : { ...options.connection, lazyConnect: true } }
  const store = new RedisStore(lazy)
  t.teardown(async () => { await store.close() })
  t.equal(store.client.status, 'wait', 'nothing connected yet')
  await store.set('lazy', 'yes', 60_000)
  t.equal(await store.get('lazy'), 'yes', 'the first command connected the client and ran')
})
