import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { generateApiKey, RedisStore } from '../src/index.js'
import type { ApiKeyRecord } from '../src/index.js'
import { buildApp } from './helpers/app.js'
import { redisSkipReason, startRedis } from './helpers/redis.js'

const COMMAND_TIMEOUT = 300
const skip = redisSkipReason()

t.test('two instances on one redis-server', { skip }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  // The application's own key records live in Redis too (here under "demo:key:<id>").
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  const save = async (id: string, record: ApiKeyRecord<{ id: string }>) => { await admin.set(`demo:key:${id}`, JSON.stringify(record)) }

  async function instance () {
    const store = new RedisStore({ connection: redis.url, commandTimeout: COMMAND_TIMEOUT })
    const app = await buildApp({
      store,
      apiKey: {
        environment: 'live',
        lookup: async (id) => {
          const json = await store.client.get(`demo:key:${id}`)
          return json === null ? null : JSON.parse(json)
        }
      },
      rateLimit: { max: 1000, failuresPerIp: { max: 50 } }
    })
    app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async (request) => request.user)
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

  t.test('redis-server hung (SIGSTOP) → 503 after the command timeout, not a hang; resumed → 200', async (t) => {
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
    t.ok(elapsed >= COMMAND_TIMEOUT - 20 && elapsed < COMMAND_TIMEOUT + 250, `answered in ${elapsed.toFixed(0)} ms (timeout ${COMMAND_TIMEOUT} ms)`)
    const deadline = Date.now() + 10_000
    let status = 0
    while (Date.now() < deadline && status !== 200) {
      status = (await get(a, k.key)).statusCode
      if (status !== 200) await sleep(50)
    }
    t.equal(status, 200)
  })

  t.test('redis-server killed → 503 within the command timeout; restarted → 200 in the same process', async (t) => {
    const k = generateApiKey({ prefix: 'ak', environment: 'live' })
    const record = { user: { id: 'u4' }, hash: k.hash }
    await save(k.id, record)
    t.equal((await get(a, k.key)).statusCode, 200)
    await redis.stop()
    for (const app of [a, b]) {
      const started = performance.now()
      const res = await get(app, k.key)
      const elapsed = performance.now() - started
      t.equal(res.statusCode, 503)
      t.equal(res.json().code, 'FST_MULTIAUTH_STORE_UNAVAILABLE')
      t.ok(elapsed < COMMAND_TIMEOUT + 250, `answered in ${elapsed.toFixed(0)} ms (timeout ${COMMAND_TIMEOUT} ms)`)
    }
    await redis.restart()
    // The restarted server has no persistence: put the record back, then wait (bounded) for ioredis to reconnect.
    const deadline = Date.now() + 10_000
    let status = 0
    while (Date.now() < deadline) {
      await save(k.id, record).catch(() => {})
      status = (await get(a, k.key)).statusCode
      if (status === 200) break
      await sleep(50)
    }
    t.equal(status, 200, 'instance A serves again without a restart')
    t.equal((await get(b, k.key)).statusCode, 200, 'instance B too')
  })
})
