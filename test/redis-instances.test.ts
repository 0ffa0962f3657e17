import t from 'tap'
import { generateApiKey, RedisStore } from '../src/index.js'
import type { ApiKeyRecord } from '../src/index.js'
import { buildApp } from './helpers/app.js'
import { retryUntil } from './helpers/phased-load.js'
import { eachTopology } from './helpers/redis-topology.js'

const COMMAND_TIMEOUT = 300
// Bounds on how long a failing request may take. Not a time window to hit: a stopped Redis
// cannot answer, so a 503 comes from a timer, never sooner than half the command timeout (a
// timer may start on a loop time up to a scheduling delay old: 150 ms of margin); and well
// before the plugin's own 10 s callback timeout, the next bound that would answer if the
// command timeout did not apply (a loaded machine adds milliseconds, not 4.7 s).
const AT_LEAST_MS = COMMAND_TIMEOUT / 2
const AT_MOST_MS = COMMAND_TIMEOUT + 4700
/** A reconnect backoff is at most 2 s in ioredis: 30 s is a deadline, not a window. */
const RECONNECT_DEADLINE_MS = 30_000

eachTopology(t, 'two instances on one Redis', async (t, redis) => {
  // The application's own key records live in Redis too (here under "demo:key:<id>").
  const admin = redis.client()
  const save = async (id: string, record: ApiKeyRecord<{ id: string }>) => { await admin.set(`demo:key:${id}`, JSON.stringify(record)) }

  async function instance () {
    const store = new RedisStore(redis.storeOptions({ commandTimeout: COMMAND_TIMEOUT }))
    const app = await buildApp({
      store,
      apiKey: {
        environment: 'live',
        findKey: async (id) => {
          const json = await store.client.get(`demo:key:${id}`)
          return json === null ? null : JSON.parse(json)
        }
      },
      rateLimit: { perCredential: { max: 1000 }, failuresPerIp: { max: 50 } }
    })
    app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async (request) => request.auth?.user ?? null)
    // Revocation through this instance: the record store is shared, so every instance sees it.
    app.post('/keys/:id/revoke', async (request) => {
      const { id } = request.params as { id: string }
      const record = JSON.parse(await store.client.get(`demo:key:${id}`) as string)
      await save(id, { ...record, revoked: true })
      return { revoked: id }
    })
    await app.ready()
    t.teardown(async () => { await app.close(); await store.close() })
    return app
  }
  const a = await instance()
  const b = await instance()
  const get = (app: typeof a, key: string) => app.inject({ url: '/me', headers: { 'x-api-key': key } })

  t.test('a key revoked through one instance is refused by the other', async (t) => {
    const k = generateApiKey({ prefix: 'ak', environment: 'live' })
    await save(k.id, { user: { id: 'u1' }, hash: k.hash, environment: 'live' })
    t.equal((await get(a, k.key)).statusCode, 200)
    t.equal((await get(b, k.key)).statusCode, 200)
    t.equal((await a.inject({ method: 'POST', url: `/keys/${k.id}/revoke` })).statusCode, 200)
    t.equal((await get(b, k.key)).statusCode, 401, 'refused by the other instance')
    t.equal((await get(a, k.key)).statusCode, 401)
  })

  t.test('the rate-limit budget is shared by the two instances', async (t) => {
    const k = generateApiKey({ prefix: 'ak', environment: 'live' })
    const other = generateApiKey({ prefix: 'ak', environment: 'live' })
    await save(k.id, { user: { id: 'u2' }, hash: k.hash, rateLimit: { max: 5, timeWindow: 60_000 } })
    await save(other.id, { user: { id: 'u3' }, hash: other.hash, rateLimit: { max: 5, timeWindow: 60_000 } })
    const statuses = []
    for (const app of [a, b, a, b, a]) statuses.push((await get(app, k.key)).statusCode)
    t.same(statuses, [200, 200, 200, 200, 200])
    const sixth = await get(b, k.key)
    t.equal(sixth.statusCode, 429, 'the 6th request, on the other instance, is over the shared budget')
    t.ok(Number(sixth.headers['retry-after']) > 0 && Number(sixth.headers['retry-after']) <= 60)
    t.equal((await get(a, other.key)).statusCode, 200, 'a second key is unaffected')
    // Exactly the documented key, with a TTL.
    t.equal(await admin.get(`multiauth:rl:key:${k.id}`), '6')
    const ttl = await admin.pttl(`multiauth:rl:key:${k.id}`)
    t.ok(ttl > 0 && ttl <= 60_000, `TTL ${ttl}`)
  })

  t.test('Redis hung (SIGSTOP on every data node) → 503 after the command timeout, not a hang; resumed → 200', async (t) => {
    const k = generateApiKey({ prefix: 'ak', environment: 'live' })
    await save(k.id, { user: { id: 'u5' }, hash: k.hash })
    t.equal((await get(a, k.key)).statusCode, 200)
    redis.pause()
    t.teardown(() => redis.resume())
    const started = performance.now()
    const res = await get(a, k.key)
    const elapsed = performance.now() - started
    redis.resume()
    t.equal(res.statusCode, 503)
    t.equal(res.json().code, 'FST_MULTIAUTH_STORE_UNAVAILABLE')
    t.ok(elapsed >= AT_LEAST_MS && elapsed < AT_MOST_MS, `answered in ${elapsed.toFixed(0)} ms (timeout ${COMMAND_TIMEOUT} ms): by the command timeout, not at once, not by the 10 s callback timeout`)
    await retryUntil('a 200 after SIGCONT', async () => (await get(a, k.key)).statusCode === 200, RECONNECT_DEADLINE_MS)
    t.pass('200 again after SIGCONT')
  })

  t.test('Redis killed (every data node) → 503 within the command timeout; restarted → 200 in the same process', async (t) => {
    const k = generateApiKey({ prefix: 'ak', environment: 'live' })
    const record = { user: { id: 'u4' }, hash: k.hash }
    await save(k.id, record)
    t.equal((await get(a, k.key)).statusCode, 200)
    await redis.down()
    for (const app of [a, b]) {
      const started = performance.now()
      const res = await get(app, k.key)
      const elapsed = performance.now() - started
      t.equal(res.statusCode, 503)
      t.equal(res.json().code, 'FST_MULTIAUTH_STORE_UNAVAILABLE')
      t.ok(elapsed < AT_MOST_MS, `answered in ${elapsed.toFixed(0)} ms (timeout ${COMMAND_TIMEOUT} ms), not by the 10 s callback timeout`)
    }
    await redis.up()
    // The restarted server has no persistence: put the record back, then wait (bounded) for ioredis to reconnect.
    await retryUntil('instance A to serve the key again', async () => {
      await save(k.id, record).catch(() => {})
      return (await get(a, k.key)).statusCode === 200
    }, RECONNECT_DEADLINE_MS)
    t.pass('instance A serves again without a restart')
    t.equal((await get(b, k.key)).statusCode, 200, 'instance B too')
  })
})
