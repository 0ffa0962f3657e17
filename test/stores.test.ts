import t from 'tap'
import type { Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { MemoryStore, RedisStore, StoreUnavailableError } from '../src/index.js'
import type { MultiauthStore } from '../src/index.js'
import { retryUntil } from './helpers/phased-load.js'
import { redisSkipReason, startRedis } from './helpers/redis.js'

// One contract, run against both implementations. TTLs are 1 s: a read right after a write
// is still inside it with a margin of 1 s less one round trip (only an event-loop stall of
// a second could expire it early), and `advance` goes 200 ms past it (a real sleep for Redis,
// which can only be longer; the fake clock for MemoryStore).
const TTL = 1000
const PAST_TTL = TTL + 200

function contract (t: Test, name: string, make: () => Promise<{ store: MultiauthStore, advance: (ms: number) => Promise<void> }>): void {
  t.test(`${name}: get/set/delete`, async (t) => {
    const { store } = await make()
    t.equal(await store.get('a'), null)
    await store.set('a', '1', 60_000)
    t.equal(await store.get('a'), '1')
    await store.delete('a')
    t.equal(await store.get('a'), null)
  })
  t.test(`${name}: getMany reads several keys in order`, async (t) => {
    const { store } = await make()
    await store.set('m1', 'a', 60_000)
    await store.set('m3', 'c', 60_000)
    t.same(await store.getMany?.(['m1', 'm2', 'm3']), ['a', null, 'c'])
  })
  t.test(`${name}: setIfAbsent sets once`, async (t) => {
    const { store } = await make()
    t.equal(await store.setIfAbsent('once', 'x', 60_000), true)
    t.equal(await store.setIfAbsent('once', 'y', 60_000), false)
    t.equal(await store.get('once'), 'x')
  })
  t.test(`${name}: increment counts and expires`, async (t) => {
    const { store, advance } = await make()
    t.equal(await store.increment('c', TTL), 1)
    t.equal(await store.increment('c', TTL), 2)
    t.equal(await store.increment('c', TTL), 3)
    await advance(PAST_TTL)
    t.equal(await store.increment('c', TTL), 1, 'a new window starts after the TTL')
  })
  t.test(`${name}: values expire after their TTL`, async (t) => {
    const { store, advance } = await make()
    await store.set('ttl', 'v', TTL)
    t.equal(await store.get('ttl'), 'v')
    await advance(PAST_TTL)
    t.equal(await store.get('ttl'), null)
    t.equal(await store.setIfAbsent('ttl', 'w', TTL), true, 'an expired key can be set again')
  })
}

contract(t, 'MemoryStore', async () => {
  let now = 1_000_000
  const store = new MemoryStore({ now: () => now })
  return { store, advance: async (ms) => { now += ms } }
})

t.test('MemoryStore sweeps expired entries so memory stays bounded', async (t) => {
  let now = 0
  const store = new MemoryStore({ now: () => now, sweepEvery: 10 })
  for (let i = 0; i < 9; i++) await store.set(`k${i}`, 'v', 10)
  t.equal(store.size, 9)
  now = 100
  await store.set('fresh', 'v', 10)
  t.equal(store.size, 1, 'the 10th write swept the 9 expired entries')
})

const skip = redisSkipReason()
t.test('RedisStore against a real redis-server', { skip }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const stores: RedisStore[] = []
  t.teardown(async () => { for (const s of stores) await s.close() })
  contract(t, 'RedisStore', async () => {
    const store = new RedisStore({ connection: redis.url, prefix: `t${stores.length}:` })
    stores.push(store)
    return { store, advance: async (ms) => { await sleep(ms) } }
  })

  t.test('writes only prefixed keys', async (t) => {
    const store = new RedisStore({ connection: redis.url, prefix: 'myapp:auth:' })
    stores.push(store)
    await store.set('k', 'v', 10_000)
    t.same(await store.client.keys('myapp:auth:*'), ['myapp:auth:k'])
    t.ok(await store.client.pttl('myapp:auth:k') > 0, 'every key has a TTL')
  })

  t.test('fails closed with 503 while Redis is down and recovers without a restart', async (t) => {
    const store = new RedisStore({ connection: redis.url, commandTimeout: 300 })
    stores.push(store)
    await store.set('x', '1', 60_000)
    await redis.stop()
    const started = performance.now()
    const err = await store.get('x').then(() => null, (e: unknown) => e)
    t.type(err, StoreUnavailableError)
    t.equal((err as InstanceType<typeof StoreUnavailableError>).statusCode, 503)
    // A bound, not a window: the command fails by commandTimeout (300 ms) or sooner; 5 s tells
    // "bounded" from "hangs" with seconds of margin for a loaded machine.
    const elapsed = performance.now() - started
    t.ok(elapsed < 5000, `the failure is bounded (${elapsed.toFixed(0)} ms, commandTimeout 300 ms)`)
    await redis.restart()
    // ioredis reconnects on its own (backoff at most 2 s); wait, with a deadline, until a command succeeds again.
    let value: string | null | undefined
    await retryUntil('a command to succeed after the restart', async () => {
      value = await store.get('x').catch(() => undefined)
      return value !== undefined
    }, 30_000)
    t.equal(value, null, 'reachable again (the restarted server has no persistence, so the key is gone)')
  })
})
