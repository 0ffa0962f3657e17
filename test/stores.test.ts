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

// The two stores shipped with the package: the MultiauthStore interface (optional methods
// included) plus `setIfAbsent` and `increment`, which are no longer part of the interface but
// remain on both classes as extras.
type ShippedStore = MemoryStore | RedisStore

function contract (t: Test, name: string, make: () => Promise<{ store: ShippedStore, advance: (ms: number) => Promise<void> }>): void {
  t.test(`${name}: implements the optional MultiauthStore methods the plugin relies on`, async (t) => {
    const { store } = await make()
    // Assigned to the interface type: a signature that drifted from MultiauthStore fails tsc here.
    const asInterface: MultiauthStore = store
    for (const method of ['getMany', 'setUnlessEqual', 'compareAndSet', 'addCapped'] as const) {
      t.type(asInterface[method], 'function', method)
    }
  })
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
    t.same(await store.getMany(['m1', 'm2', 'm3']), ['a', null, 'c'])
  })
  t.test(`${name}: setUnlessEqual writes unless the key holds exactly \`unless\``, async (t) => {
    const { store, advance } = await make()
    t.equal(await store.setUnlessEqual('s', 'v1', TTL, 'tomb'), true, 'an absent key is written')
    t.equal(await store.get('s'), 'v1')
    t.equal(await store.setUnlessEqual('s', 'v2', TTL, 'tomb'), true, 'another value is overwritten')
    t.equal(await store.get('s'), 'v2')
    await store.set('s', 'tomb', TTL)
    t.equal(await store.setUnlessEqual('s', 'v3', TTL, 'tomb'), false, 'the tombstone is not overwritten')
    t.equal(await store.get('s'), 'tomb', 'and stays as it was')
    await store.set('s', 'tombstone', TTL)
    t.equal(await store.setUnlessEqual('s', 'v4', TTL, 'tomb'), true, 'the comparison is exact (no prefix match)')
    t.equal(await store.get('s'), 'v4')
    await advance(PAST_TTL)
    t.equal(await store.get('s'), null, 'a value it wrote expires after its TTL')
  })
  t.test(`${name}: compareAndSet replaces only the expected value, once`, async (t) => {
    const { store, advance } = await make()
    t.equal(await store.compareAndSet('cas', 'a', 'b', TTL), false, 'an absent key does not match')
    t.equal(await store.get('cas'), null, 'and is not created')
    await store.set('cas', 'a', TTL)
    t.equal(await store.compareAndSet('cas', 'x', 'b', TTL), false, 'another value does not match')
    t.equal(await store.get('cas'), 'a', 'and stays as it was')
    t.equal(await store.compareAndSet('cas', 'a', 'b', TTL), true)
    t.equal(await store.get('cas'), 'b')
    t.equal(await store.compareAndSet('cas', 'a', 'c', TTL), false, 'the old value no longer matches')
    t.equal(await store.get('cas'), 'b')
    // Two rotations of the same value at once (refresh-token reuse): exactly one wins.
    const results = await Promise.all([store.compareAndSet('cas', 'b', 'c1', TTL), store.compareAndSet('cas', 'b', 'c2', TTL)])
    t.same(results.filter(Boolean).length, 1, `exactly one of two concurrent calls wrote (${results.join(', ')})`)
    t.equal(await store.get('cas'), results[0] ? 'c1' : 'c2', 'the value is the winner\'s')
    await advance(PAST_TTL)
    t.equal(await store.get('cas'), null, 'a value it wrote expires after its TTL')
  })
  t.test(`${name}: addCapped keeps the newest max members and returns those it drops`, async (t) => {
    const { store, advance } = await make()
    t.same(await store.addCapped('fam', 'a', 2, TTL), [])
    t.same(await store.addCapped('fam', 'b', 2, TTL), [])
    t.same(await store.addCapped('fam', 'c', 2, TTL), ['a'], 'the oldest is dropped')
    t.same(await store.addCapped('fam', 'b', 2, TTL), [], 'adding a member again drops nothing')
    t.same(await store.addCapped('fam', 'd', 2, TTL), ['c'], 'and made it the newest: c is now the oldest')
    t.same(await store.addCapped('fam', 'e', 1, TTL), ['b', 'd'], 'a smaller max drops several, oldest first')
    t.same(await store.addCapped('other', 'x', 1, TTL), [], 'keys are independent')
    await advance(PAST_TTL)
    t.same(await store.addCapped('fam', 'f', 1, TTL), [], 'the set expired after its TTL: nothing left to drop')
  })
  t.test(`${name}: setIfAbsent (class extra) sets once`, async (t) => {
    const { store } = await make()
    t.equal(await store.setIfAbsent('once', 'x', 60_000), true)
    t.equal(await store.setIfAbsent('once', 'y', 60_000), false)
    t.equal(await store.get('once'), 'x')
  })
  t.test(`${name}: increment (class extra) counts and expires`, async (t) => {
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
    // The contract tests above share this server: start from an empty database, so `keys('*')` sees only this store's writes.
    await store.client.flushdb()
    await store.set('k', 'v', 10_000)
    await store.setUnlessEqual('s', 'v', 10_000, 'tomb')
    await store.set('c', 'a', 10_000)
    await store.compareAndSet('c', 'a', 'b', 10_000)
    await store.addCapped('z', 'm', 2, 10_000)
    await store.setIfAbsent('n', 'v', 10_000)
    await store.increment('i', 10_000)
    const keys = ['myapp:auth:c', 'myapp:auth:i', 'myapp:auth:k', 'myapp:auth:n', 'myapp:auth:s', 'myapp:auth:z']
    t.same((await store.client.keys('*')).sort(), keys, 'every write went under the prefix')
    for (const key of keys) t.ok(await store.client.pttl(key) > 0, `every key has a TTL (${key})`)
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
