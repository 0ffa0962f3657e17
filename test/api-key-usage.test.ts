import t from 'tap'
import type { Test } from 'tap'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { MemoryStore, RedisStore, apiKeyId, generateApiKey, readApiKeyUsage } from '../src/index.js'
import type { ApiKeyUsage, ApiKeyUsageOptions, GeneratedApiKey, MultiauthOptions, MultiauthStore } from '../src/index.js'
import { UsageCounter } from '../src/methods/api-key/usage.js'
import { buildApp } from './helpers/app.js'
import { eachTopology } from './helpers/redis-topology.js'

// apiKey.usage: requests counted per key in memory, written at most once per key per interval per
// instance (to the store and onUsed), added up over instances, never holding or failing a request.
// The clock is apiKey.now: no sleeps. The RedisStore tests run on standalone, Cluster and Sentinel.
const T0 = 1_767_225_600_123 // ms, 13 digits with low digits set: written and read back exactly
const MINUTE = 60_000

interface Clock { now: () => number, set: (ms: number) => void }
function clock (): Clock {
  let now = T0
  return { now: () => now, set: (ms) => { now = ms } }
}

type LogLine = Record<string, unknown>

interface Harness {
  app: FastifyInstance
  keys: GeneratedApiKey[]
  logs: LogLine[]
  /** Resolves with the first log line whose message is `msg`, when it is written. */
  logged: (msg: string) => Promise<LogLine>
  call: (key: GeneratedApiKey, path?: string) => Promise<number>
}

/** An app whose keys live in memory (findKey answers synchronously); logs collected as objects. */
async function usageApp (t: Test, options: { store?: MultiauthStore, usage: boolean | ApiKeyUsageOptions, now: () => number, keys?: number }): Promise<Harness> {
  const keys = Array.from({ length: options.keys ?? 1 }, () => generateApiKey({ prefix: 'ak', environment: 'live' }))
  const records = new Map(keys.map((k) => [k.id, { user: { id: `user-${k.id}` }, hash: k.hash, scopes: ['read'] }]))
  const logs: LogLine[] = []
  const waiting: Array<{ msg: string, resolve: (line: LogLine) => void }> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      const line = JSON.parse(chunk.toString()) as LogLine
      logs.push(line)
      for (const waiter of waiting.filter((w) => w.msg === line.msg)) waiter.resolve(line)
      done()
    }
  })
  const logged = async (msg: string): Promise<LogLine> => await new Promise((resolve) => {
    const found = logs.find((line) => line.msg === msg)
    if (found !== undefined) resolve(found)
    else waiting.push({ msg, resolve })
  })
  const app = await buildApp({
    ...(options.store === undefined ? {} : { store: options.store }),
    rateLimit: false,
    apiKey: { findKey: (id) => records.get(id) ?? null, now: options.now, usage: options.usage }
  }, { logger: { level: 'warn', stream } })
  app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
  app.get('/admin', { onRequest: app.authGuard({ methods: ['apiKey'], scopes: ['admin'] }) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const call = async (key: GeneratedApiKey, path = '/'): Promise<number> => (await app.inject({ url: path, headers: { 'x-api-key': key.key } })).statusCode
  return { app, keys, logs, logged, call }
}

/** A store that counts the usage writes it receives, over a real MemoryStore. */
function countingStore (inner: MemoryStore): MultiauthStore & { writes: Array<[string, number, number, number]> } {
  const writes: Array<[string, number, number, number]> = []
  return {
    writes,
    get: async (key) => await inner.get(key),
    set: async (key, value, ttl) => { await inner.set(key, value, ttl) },
    delete: async (key) => { await inner.delete(key) },
    recordUsage: async (key, count, atMs, ttlMs) => {
      writes.push([key, count, atMs, ttlMs])
      await inner.recordUsage(key, count, atMs, ttlMs)
    }
  }
}

t.test('registration: apiKey.usage is checked like every option', async (t) => {
  const findKey = (): null => null
  const store = new MemoryStore()
  const register = async (apiKey: NonNullable<MultiauthOptions['apiKey']>, withStore = true): Promise<void> => {
    const app = await buildApp({ apiKey, ...(withStore ? { store } : {}) })
    await app.close()
  }
  await t.rejects(register({ verify: () => null, usage: true }), /apiKey\.usage needs apiKey\.findKey/)
  await t.rejects(register({ findKey, usage: true }, false), /apiKey\.usage is written to the store option or handed to apiKey\.usage\.onUsed/)
  await t.rejects(register({ findKey, usage: { interval: 999 } }), /apiKey\.usage\.interval must be at least 1000 ms/)
  await t.rejects(register({ findKey, usage: { interval: 'often' } }), /apiKey\.usage\.interval must be a number of milliseconds/)
  await t.rejects(register({ findKey, usage: { interval: '10m', retention: '5m' } }), /apiKey\.usage\.retention must be at least 600000 ms/)
  await t.rejects(register({ findKey, usage: { maxKeys: 0 } }), /apiKey\.usage\.maxKeys must be a positive integer/)
  // @ts-expect-error onUsed must be a function
  await t.rejects(register({ findKey, usage: { onUsed: 'log' } }), /apiKey\.usage\.onUsed must be a function/)
  // @ts-expect-error an unknown key
  await t.rejects(register({ findKey, usage: { every: '1m' } }), /unknown option apiKey\.usage\.every/)
  // @ts-expect-error usage is a boolean or an object
  await t.rejects(register({ findKey, usage: 'yes' }), /apiKey\.usage must be an object/)
  await t.rejects(buildApp({ apiKey: { findKey, usage: true }, store: { get: async () => null, set: async () => {}, delete: async () => {}, recordUsage: 1 } as unknown as MultiauthStore }), /store\.recordUsage must be a function when given/)
  await register({ findKey, usage: true })
  await register({ findKey, usage: false }, false)
  await register({ findKey, usage: { onUsed: () => {} } }, false)
})

t.test('at most one write per key per interval: the first request, then the first after the interval, then close', async (t) => {
  const time = clock()
  const memory = new MemoryStore({ now: time.now })
  const store = countingStore(memory)
  const used: ApiKeyUsage[] = []
  const { app, keys: [key, other], call } = await usageApp(t, { store, now: time.now, keys: 2, usage: { interval: '1m', onUsed: (usage) => { used.push(usage) } } })
  if (key === undefined || other === undefined) throw new Error('two keys')

  for (let i = 0; i < 20; i++) {
    time.set(T0 + i * 1000)
    t.equal(await call(key), 200)
  }
  t.same(store.writes, [[`usage:${key.id}`, 1, T0, 365 * 24 * 3_600_000]], '20 requests in 19 s: one write, at the first (retention: 365 days)')
  t.same(used, [{ keyId: key.id, count: 1, lastUsedAt: new Date(T0) }], 'onUsed with it')
  t.same(await readApiKeyUsage(memory, key.key), { count: 1, lastUsedAt: new Date(T0) })

  time.set(T0 + MINUTE - 1)
  t.equal(await call(key), 200)
  t.equal(store.writes.length, 1, 'still within the interval')
  time.set(T0 + MINUTE)
  t.equal(await call(key), 200)
  t.same(store.writes.slice(1), [[`usage:${key.id}`, 21, T0 + MINUTE, 365 * 24 * 3_600_000]], 'the first request after the interval writes every request since')
  t.same(await readApiKeyUsage(memory, key.id), { count: 22, lastUsedAt: new Date(T0 + MINUTE) }, 'by id too; lastUsedAt advanced')

  // A refused request (scope) still used the key; another key is counted on its own.
  time.set(T0 + MINUTE + 5000)
  t.equal(await call(key, '/admin'), 403)
  t.equal(await call(other), 200)
  t.same(store.writes.slice(2).map((w) => [w[0], w[1]]), [[`usage:${other.id}`, 1]])
  await app.close()
  t.same(store.writes.slice(3), [[`usage:${key.id}`, 1, T0 + MINUTE + 5000, 365 * 24 * 3_600_000]], 'close writes what was counted since')
  t.same(await readApiKeyUsage(memory, key.key), { count: 23, lastUsedAt: new Date(T0 + MINUTE + 5000) }, 'every request is in the store')
  t.same(used.map((u) => u.count), [1, 21, 1, 1], 'onUsed saw every write')
  t.same(await readApiKeyUsage(memory, generateApiKey({ prefix: 'ak', environment: 'live' }).key), null, 'a key never used: null')
})

t.test('a refused key is not counted', async (t) => {
  const time = clock()
  const store = countingStore(new MemoryStore())
  const { keys: [key], call } = await usageApp(t, { store, now: time.now, usage: true })
  if (key === undefined) throw new Error('a key')
  const wrong = generateApiKey({ prefix: 'ak', environment: 'live' })
  t.equal(await call(wrong), 401)
  t.same(store.writes, [], 'an unknown key writes nothing')
  t.equal(await call(key), 200)
  t.equal(store.writes.length, 1)
})

t.test('a custom store without recordUsage: read, then write, the same totals', async (t) => {
  const time = clock()
  const inner = new MemoryStore()
  const store: MultiauthStore = { get: async (k) => await inner.get(k), set: async (k, v, ttl) => { await inner.set(k, v, ttl) }, delete: async (k) => { await inner.delete(k) } }
  const { app, keys: [key], call } = await usageApp(t, { store, now: time.now, usage: { interval: '1m' } })
  if (key === undefined) throw new Error('a key')
  for (const offset of [0, 1000, MINUTE + 1000, MINUTE + 2000]) {
    time.set(T0 + offset)
    t.equal(await call(key), 200)
  }
  await app.close()
  t.same(await readApiKeyUsage(inner, key.key), { count: 4, lastUsedAt: new Date(T0 + MINUTE + 2000) })
})

t.test('a failing store or onUsed never fails, nor holds, the request; the failure is logged without the key', async (t) => {
  const time = clock()
  let failing = true
  const inner = new MemoryStore()
  const store: MultiauthStore = {
    get: async (k) => await inner.get(k),
    set: async (k, v, ttl) => { await inner.set(k, v, ttl) },
    delete: async (k) => { await inner.delete(k) },
    recordUsage: async (k, count, atMs, ttlMs) => {
      if (failing) throw new Error('store down')
      await inner.recordUsage(k, count, atMs, ttlMs)
    }
  }
  const { keys: [key], logs, logged, call } = await usageApp(t, { store, now: time.now, usage: { onUsed: () => { throw new Error('metrics down') } } })
  if (key === undefined) throw new Error('a key')
  t.equal(await call(key), 200)
  t.match(await logged('multiauth: API-key usage not written to the store'), { level: 40, keyId: key.id })
  t.match(await logged('multiauth: apiKey.usage.onUsed failed'), { level: 40, keyId: key.id })
  t.notOk(JSON.stringify(logs).includes(key.key), 'the key is not in the log')
  failing = false
  time.set(T0 + MINUTE)
  t.equal(await call(key), 200)
  t.same(await readApiKeyUsage(inner, key.key), { count: 1, lastUsedAt: new Date(T0 + MINUTE) }, 'the failed write is lost, counting goes on')
})

t.test('readApiKeyUsage: a key or an id, and bad data is an error, never a zero', async (t) => {
  const store = new MemoryStore()
  const key = generateApiKey({ prefix: 'ak', environment: 'live' })
  await t.rejects(readApiKeyUsage(store, 'not-a-key'), TypeError)
  // The last character changed (to another one: a key may end in 'x'), so the checksum is wrong.
  await t.rejects(readApiKeyUsage(store, key.key.slice(0, -1) + (key.key.endsWith('x') ? 'y' : 'x')), TypeError, 'a key with a wrong checksum')
  t.equal(await readApiKeyUsage(store, key.id), null)
  for (const bad of ['{', '{"count":-1,"lastUsedAt":1}', '{"count":1}', '{"count":"1","lastUsedAt":1}', '[1,2]']) {
    await store.set(`usage:${key.id}`, bad, MINUTE)
    await t.rejects(readApiKeyUsage(store, key.key), { code: 'FST_MULTIAUTH_STORE_DATA' }, bad)
  }
  // The write path replaces what it cannot read: counting goes on.
  await store.recordUsage(`usage:${key.id}`, 2, T0, MINUTE)
  t.same(await readApiKeyUsage(store, key.id), { count: 2, lastUsedAt: new Date(T0) })
  await store.recordUsage(`usage:${key.id}`, 3, T0 - 5000, MINUTE)
  t.same(await readApiKeyUsage(store, key.id), { count: 5, lastUsedAt: new Date(T0) }, 'an older write adds its count but does not move lastUsedAt back')
})

t.test('bounded memory: many keys, at most maxKeys counted; an evicted key\'s count is written early, never lost', async (t) => {
  const written = new Map<string, number>()
  let writes = 0
  const counter = new UsageCounter(MINUTE, 100, async (keyId, count) => {
    writes++
    written.set(keyId, (written.get(keyId) ?? 0) + count)
  })
  let largest = 0
  let requests = 0
  // 10,000 keys, each used three times within the interval, round robin: the worst case for a bounded map.
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 10_000; i++) {
      counter.count(`key-${i}`, T0 + round)
      requests++
      largest = Math.max(largest, counter.size)
    }
  }
  t.equal(largest, 100, 'never more than maxKeys entries')
  await counter.close()
  t.equal(counter.size, 0)
  t.equal([...written.values()].reduce((a, b) => a + b, 0), requests, 'every request written')
  t.ok(writes <= requests, `never more than one write per request (${writes} for ${requests})`)

  // Within maxKeys, the bound holds: one write per key per interval.
  const calm = new Map<string, number>()
  const steady = new UsageCounter(MINUTE, 100, async (keyId) => { calm.set(keyId, (calm.get(keyId) ?? 0) + 1) })
  for (let second = 0; second < 60; second++) for (let i = 0; i < 50; i++) steady.count(`key-${i}`, T0 + second * 1000)
  t.same(new Set(calm.values()), new Set([1]), '50 keys, a request each per second for 59 s: one write each')
})

eachTopology(t, 'RedisStore: two instances on one Redis add up; one script call per write (INFO commandstats)', async (t, redis) => {
  const admin = redis.client()
  /** EVAL and EVALSHA calls so far, on every primary: only the usage script runs any here (no rate limits, keys found in memory). */
  const scriptCalls = async (): Promise<number> => await redis.commandCalls('evalsha') + await redis.commandCalls('eval')
  const time = clock()
  const key = generateApiKey({ prefix: 'ak', environment: 'live' })
  const records = new Map([[key.id, { user: { id: 'svc' }, hash: key.hash }]])
  /**
   * A store's commands to one key run in order on the connection to that key's primary (on a
   * Cluster, a PING may go to another master): once a read of the usage key answers, the writes
   * before it are done.
   */
  const instance = async (): Promise<{ app: FastifyInstance, call: () => Promise<number>, written: () => Promise<unknown> }> => {
    const store = new RedisStore(redis.storeOptions())
    const app = await buildApp({ store, rateLimit: false, apiKey: { findKey: (id) => records.get(id) ?? null, now: time.now, usage: { interval: '1m', retention: '30d' } } })
    app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
    await app.ready()
    return { app, call: async () => (await app.inject({ url: '/', headers: { 'x-api-key': key.key } })).statusCode, written: async () => await store.client.exists(`${store.prefix}usage:${key.id}`) }
  }
  const a = await instance()
  const b = await instance()
  const reader = new RedisStore(redis.storeOptions())
  t.teardown(() => reader.close())
  const before = await scriptCalls()

  const statuses: number[] = []
  for (let i = 0; i < 50; i++) {
    time.set(T0 + i * 100)
    statuses.push(await a.call(), await b.call())
  }
  t.same(new Set(statuses), new Set([200]))
  await a.written()
  await b.written()
  t.equal(await scriptCalls() - before, 2, '100 requests within the interval on two instances: one write each')
  t.same(await readApiKeyUsage(reader, key.key), { count: 2, lastUsedAt: new Date(T0) })

  time.set(T0 + MINUTE + 1)
  t.equal(await a.call(), 200)
  t.equal(await b.call(), 200)
  await a.written()
  await b.written()
  t.equal(await scriptCalls() - before, 4, 'after the interval: one more each')
  t.same(await readApiKeyUsage(reader, key.id), { count: 102, lastUsedAt: new Date(T0 + MINUTE + 1) }, 'the counts of both instances added up; lastUsedAt advanced')
  const ttl = await admin.pttl(`multiauth:usage:${key.id}`)
  t.ok(ttl > 29 * 86_400_000 && ttl <= 30 * 86_400_000, `kept for the retention (${ttl} ms)`)

  // a counts the later request, but b writes last: lastUsedAt must not go back to b's.
  time.set(T0 + MINUTE + 500)
  t.equal(await a.call(), 200)
  time.set(T0 + MINUTE + 200)
  t.equal(await b.call(), 200)
  await a.app.close()
  await b.app.close()
  t.equal(await scriptCalls() - before, 6, 'close writes what each counted')
  t.same(await readApiKeyUsage(reader, key.key), { count: 104, lastUsedAt: new Date(T0 + MINUTE + 500) }, 'lastUsedAt is the latest, whichever instance wrote last')
})

eachTopology(t, 'RedisStore down or hanging: the request answers at once, the write fails later and is logged', async (t, redis) => {
  const time = clock()
  // A bound far above the time an in-memory request takes, so "answered first" holds on a loaded machine.
  const store = new RedisStore(redis.storeOptions({ commandTimeout: 1500 }))
  const { keys: [key], logs, logged, call } = await usageApp(t, { store, now: time.now, usage: true })
  if (key === undefined) throw new Error('a key')
  t.equal(await call(key), 200)

  redis.pause() // SIGSTOP every data node: connected, answering nothing
  t.teardown(() => { redis.resume() })
  time.set(T0 + MINUTE)
  const failure = logged('multiauth: API-key usage not written to the store')
  t.equal(await call(key), 200, 'answered while the write is still waiting for Redis')
  t.same(logs, [], 'the response came before the write gave up')
  t.match(await failure, { level: 40, keyId: key.id, err: { code: 'FST_MULTIAUTH_STORE_UNAVAILABLE' } })
  redis.resume()

  await redis.down()
  time.set(T0 + 2 * MINUTE)
  t.equal(await call(key), 200, 'Redis gone: still 200 (the key was found in memory)')
  t.equal(apiKeyId(key.key), key.id)
})
