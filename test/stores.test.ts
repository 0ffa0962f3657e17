import t from 'tap'
import type { Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { MemoryStore, RedisStore, StoreUnavailableError } from '../src/index.js'
import type { MultiauthStore, RedisStoreOptions } from '../src/index.js'
import type { WriteOptions } from '../src/stores/types.js'
import { retryUntil } from './helpers/phased-load.js'
import { eachTopology } from './helpers/redis-topology.js'

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
    for (const method of ['getMany', 'setUnlessEqual', 'compareAndSet', 'addCapped', 'recordUsage'] as const) {
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
    // One hash tag: on a Redis Cluster, keys read together must share a slot (as the plugin's do).
    await store.set('{m}1', 'a', 60_000)
    await store.set('{m}3', 'c', 60_000)
    t.same(await store.getMany(['{m}1', '{m}2', '{m}3']), ['a', null, 'c'])
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
  t.test(`${name}: recordUsage adds counts, keeps the latest lastUsedAt, and reads back with get`, async (t) => {
    const { store } = await make()
    const at = 1_767_225_600_123 // ms: 13 digits written and read back exactly
    await store.recordUsage('usage:k', 3, at, 60_000)
    await store.recordUsage('usage:k', 2, at - 5000, 60_000)
    t.same(JSON.parse(await store.get('usage:k') ?? 'null'), { count: 5, lastUsedAt: at }, 'an older write adds its count, not its time')
    await store.recordUsage('usage:k', 1, at + 1, 60_000)
    t.same(JSON.parse(await store.get('usage:k') ?? 'null'), { count: 6, lastUsedAt: at + 1 })
    await store.set('usage:bad', '{"count":"x"}', 60_000)
    await store.recordUsage('usage:bad', 4, at, 60_000)
    t.same(JSON.parse(await store.get('usage:bad') ?? 'null'), { count: 4, lastUsedAt: at }, 'a value it cannot read is replaced')
  })
  t.test(`${name}: values expire after their TTL`, async (t) => {
    const { store, advance } = await make()
    await store.set('ttl', 'v', TTL)
    await store.recordUsage('usage:ttl', 1, 1, TTL)
    t.equal(await store.get('ttl'), 'v')
    await advance(PAST_TTL)
    t.equal(await store.get('ttl'), null)
    t.equal(await store.get('usage:ttl'), null, 'recordUsage sets the TTL')
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

eachTopology(t, 'RedisStore against real Redis', async (t, redis) => {
  const stores: RedisStore[] = []
  t.teardown(async () => { for (const s of stores) await s.close() })
  const open = (extra: Partial<RedisStoreOptions> = {}): RedisStore => {
    const store = new RedisStore(redis.storeOptions(extra))
    stores.push(store)
    return store
  }
  contract(t, 'RedisStore', async () => ({ store: open({ prefix: `t${stores.length}:` }), advance: async (ms) => { await sleep(ms) } }))

  if (redis.name === 'cluster') {
    t.test('getMany over keys of different hash slots fails closed (503), never a partial answer', async (t) => {
      const store = open({ prefix: 'x:' })
      const client = store.client
      // Through the store first: it waits for the client to be ready (a Cluster client the store
      // owns has no offline queue, so a command sent on it before then fails at once).
      await store.set('a', '1', 60_000)
      t.not(await client.cluster('KEYSLOT', 'x:a'), await client.cluster('KEYSLOT', 'x:b'), 'x:a and x:b are in different slots')
      const err = await store.getMany(['a', 'b']).then(() => null, (e: unknown) => e)
      t.type(err, StoreUnavailableError)
      // With auto-pipelining (the store's own clients), ioredis refuses the multi-slot MGET before
      // sending it; a client without it sends it and Redis answers CROSSSLOT. Either way: no answer.
      t.match(String((err as Error & { cause?: unknown }).cause), /CROSSSLOT|keys in a pipeline command should belong to the same slot/, 'the cause is the multi-slot MGET refused (by the client or by Redis Cluster)')
    })
  }

  t.test('writes only prefixed keys', async (t) => {
    const store = open({ prefix: 'myapp:auth:' })
    // The contract tests above share this topology: start from empty primaries, so `keys('*')` sees only this store's writes.
    await redis.flush()
    await store.set('k', 'v', 10_000)
    await store.setUnlessEqual('s', 'v', 10_000, 'tomb')
    await store.set('c', 'a', 10_000)
    await store.compareAndSet('c', 'a', 'b', 10_000)
    await store.addCapped('z', 'm', 2, 10_000)
    await store.setIfAbsent('n', 'v', 10_000)
    await store.increment('i', 10_000)
    await store.reserve('r', 2, 10_000)
    const keys = ['myapp:auth:c', 'myapp:auth:i', 'myapp:auth:k', 'myapp:auth:n', 'myapp:auth:r', 'myapp:auth:s', 'myapp:auth:z']
    t.same(await redis.keys('*'), keys, 'every write went under the prefix')
    for (const key of keys) t.ok(await store.client.pttl(key) > 0, `every key has a TTL (${key})`)
  })

  t.test('reserve takes a slot only below max; the window starts with the first slot and is never extended', async (t) => {
    const store = open({ prefix: 'rsv:' })
    const WINDOW = 60_000
    const hash = async (): Promise<Record<string, string>> => await store.client.hgetall('rsv:a')
    const first = await store.reserve('a', 3, WINDOW)
    t.same([first.taken, first.refusals, first.inFlight], [true, 0, 1], 'the first slot')
    t.ok(first.ttlMs > 0 && first.ttlMs <= WINDOW, `it reports the window left (${first.ttlMs} ms)`)
    t.same([(await store.reserve('a', 3, WINDOW)).inFlight, (await store.reserve('a', 3, WINDOW)).inFlight], [2, 3], 'slots 2 and 3')
    const refused = await store.reserve('a', 3, WINDOW)
    t.same([refused.taken, refused.refusals, refused.inFlight], [false, 0, 3], 'at max: refused, and nothing taken')
    t.ok(refused.ttlMs > 0 && refused.ttlMs <= WINDOW, 'a refusal reports when the window ends (Retry-After)')
    t.same(await hash(), { p: '3' }, 'the counter holds exactly the slots taken')
    const pttl = await store.client.pttl('rsv:a')
    t.ok(pttl > 0 && pttl <= WINDOW, `the counter key has a TTL (${pttl} ms)`)
    // Shorten the window by hand: a later slot must not restart it (a spent budget would never end under steady guessing).
    await store.client.pexpire('rsv:a', 5000)
    await store.settle('a', true, WINDOW) // one attempt refused: its slot becomes a refusal
    t.same(await hash(), { p: '2', f: '1' }, 'a refusal keeps its slot as a counted refusal')
    await store.settle('a', false, WINDOW) // one succeeded: its slot is free
    const later = await store.reserve('a', 3, WINDOW)
    t.same([later.taken, later.refusals, later.inFlight], [true, 1, 2], 'a slot given back can be taken again')
    t.ok(later.ttlMs <= 5000, `the later slot kept the shortened window (${later.ttlMs} ms left, at most 5000; a restart would be ${WINDOW})`)
    t.ok(await store.client.pttl('rsv:a') <= 5000, 'so did the key')
  })

  t.test('settle never goes below zero, keeps the TTL, deletes an empty counter, and counts a refusal in a new window once the old one ended', async (t) => {
    const store = open({ prefix: 'rel:' })
    t.ok((await store.reserve('b', 2, 60_000)).taken)
    t.ok((await store.reserve('b', 2, 60_000)).taken)
    await store.settle('b', true, 60_000)
    for (let i = 0; i < 3; i++) await store.settle('b', false, 60_000)
    t.same(await store.client.hgetall('rel:b'), { p: '0', f: '1' }, 'three successes for one slot: zero in flight, not -2')
    t.ok(await store.client.pttl('rel:b') > 0, 'the counter still has its TTL')
    const takes = []
    for (let i = 0; i < 2; i++) takes.push((await store.reserve('b', 2, 60_000)).taken)
    t.same(takes, [true, false], 'so the budget is still exactly max (2): one refusal plus one slot')
    await store.settle('b', false, 60_000)
    await store.client.hset('rel:c', 'p', '1')
    await store.client.pexpire('rel:c', 60_000)
    await store.settle('c', false, 60_000)
    t.equal(await store.client.exists('rel:c'), 0, 'no refusal and nothing in flight: the key is deleted')
    await store.settle('gone', false, 60_000)
    t.equal(await store.client.exists('rel:gone'), 0, 'a success on a counter whose window ended writes no key')
    await store.settle('late', true, 60_000)
    t.same(await store.client.hgetall('rel:late'), { f: '1', p: '0' }, 'a refusal after the window ended is counted in a new one')
    const ttl = await store.client.pttl('rel:late')
    t.ok(ttl > 0 && ttl <= 60_000, `with the budget's window (${ttl} ms)`)
  })

  t.test('two concurrent reserves at max - 1, from two instances: exactly one takes the last slot', async (t) => {
    const a = open({ prefix: 'race:' })
    const b = open({ prefix: 'race:' })
    const MAX = 5
    for (let trial = 0; trial < 20; trial++) {
      const key = `k${trial}`
      for (let i = 0; i < MAX - 1; i++) await (i % 2 === 0 ? a : b).reserve(key, MAX, 60_000)
      const [x, y] = await Promise.all([a.reserve(key, MAX, 60_000), b.reserve(key, MAX, 60_000)])
      t.equal(Number(x.taken) + Number(y.taken), 1, `trial ${trial}: exactly one taken (${String(x.taken)}, ${String(y.taken)})`)
      t.equal(await a.client.hget(`race:${key}`, 'p'), String(MAX), `trial ${trial}: the counter is at max, not past it`)
      t.ok(await a.client.pttl(`race:${key}`) > 0, `trial ${trial}: the counter key has a TTL`)
    }
  })

  t.test('set/delete/setUnlessEqual with { durable: true } but no waitForReplicas: exactly as without it (no WAIT)', async (t) => {
    const store = open({ prefix: 'dur:' })
    const run = async (tag: string, options: WriteOptions | undefined): Promise<unknown[]> => {
      const seen: unknown[] = []
      await store.set(`${tag}k`, 'v', 60_000, options)
      seen.push(await store.get(`${tag}k`), await store.client.pttl(`dur:${tag}k`) > 0)
      seen.push(await store.setUnlessEqual(`${tag}s`, 'v1', 60_000, 'tomb', options))
      await store.set(`${tag}s`, 'tomb', 60_000, options)
      seen.push(await store.setUnlessEqual(`${tag}s`, 'v2', 60_000, 'tomb', options), await store.get(`${tag}s`))
      await store.delete(`${tag}k`, options)
      await store.delete(`${tag}absent`, options)
      seen.push(await store.get(`${tag}k`))
      return seen
    }
    const waits = await redis.commandCalls('wait')
    const plain = await run('plain:', undefined)
    const durable = await run('durable:', { durable: true })
    t.same(plain, ['v', true, true, false, 'tomb', null], 'the plain writes')
    t.same(durable, plain, 'the durable ones behave the same')
    t.equal(await redis.commandCalls('wait') - waits, 0, 'and send no WAIT')
    // Control: the count sees a WAIT when one is sent (durable, with waitForReplicas). Only the
    // Sentinel topology has a replica to acknowledge it; elsewhere the write is refused (503).
    const waiting = open({ prefix: 'dur:', waitForReplicas: { replicas: 1, timeout: 1000 } })
    const outcome = await waiting.set('w', 'v', 60_000, { durable: true }).then(() => 'written', (e: unknown) => e)
    t.equal(await redis.commandCalls('wait') - waits, 1, 'control: with waitForReplicas the durable write sent one WAIT')
    if (redis.name === 'sentinel') t.equal(outcome, 'written', 'control: the replica acknowledged it')
    else t.type(outcome, StoreUnavailableError, 'control: no replica acknowledged it → refused')
  })

  t.test('fails closed with 503 while Redis is down and recovers without a restart', async (t) => {
    const store = open({ commandTimeout: 300 })
    await store.set('x', '1', 60_000)
    await redis.down()
    const started = performance.now()
    const err = await store.get('x').then(() => null, (e: unknown) => e)
    t.type(err, StoreUnavailableError)
    t.equal((err as InstanceType<typeof StoreUnavailableError>).statusCode, 503)
    // A bound, not a window: the command fails by commandTimeout (300 ms) or sooner; 5 s tells
    // "bounded" from "hangs" with seconds of margin for a loaded machine.
    const elapsed = performance.now() - started
    t.ok(elapsed < 5000, `the failure is bounded (${elapsed.toFixed(0)} ms, commandTimeout 300 ms)`)
    await redis.up()
    // ioredis reconnects on its own (backoff at most 2 s); wait, with a deadline, until a command succeeds again.
    let value: string | null | undefined
    await retryUntil('a command to succeed after the restart', async () => {
      value = await store.get('x').catch(() => undefined)
      return value !== undefined
    }, 30_000)
    t.equal(value, null, 'reachable again (the restarted servers have no persistence, so the key is gone)')
  })
})
