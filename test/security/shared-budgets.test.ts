// [issue 13.3] The failure budgets with a RedisStore: one counter per key shared by every instance,
// holding the refusals and the attempts in flight. What that means for a client, checked on every
// topology: a slot held by an attempt in flight on another instance makes a request wait (not a
// 429 with a window-long Retry-After); refusals alone spend the budget (429); the refusal is
// written before the 401 goes out; a counter that 0.1 left (a plain string) keeps its count.
import { createHash } from 'node:crypto'
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { RedisStore } from '../../src/index.js'
import { kFailureGates } from '../../src/rate-limit/index.js'
import type { FailureGates } from '../../src/rate-limit/index.js'
import type { SharedAttempts } from '../../src/rate-limit/shared-gates.js'
import { basicHeader } from '../helpers/app.js'
import { retryUntil } from '../helpers/phased-load.js'
import { eachTopology } from '../helpers/redis-topology.js'

const WINDOW = 60_000
const userCounter = (username: string): string => 'rl:fail:user:' + createHash('sha256').update(username).digest('base64url').slice(0, 22)

async function app (store: RedisStore, onVerify?: () => Promise<void>): Promise<FastifyInstance> {
  const server = Fastify()
  await server.register(multiauth, {
    store,
    callbackTimeout: '5s',
    basic: {
      verify: async (username, password) => {
        await onVerify?.()
        return password === 'right' ? { id: username } : null
      }
    },
    rateLimit: { failuresPerIp: false, failuresPerUser: { max: 2, timeWindow: WINDOW } }
  })
  server.get('/', { onRequest: server.authGuard(['basic']) }, async () => 'ok')
  return server
}

eachTopology(t, 'shared failure budgets: held slots wait, refusals spend, 0.1 counters are kept', async (t, redis) => {
  const store = new RedisStore(redis.storeOptions({ prefix: 'sb:' }))
  // Another instance, as far as the counter can tell: the same store, used directly.
  const other = new RedisStore(redis.storeOptions({ prefix: 'sb:' }))
  const server = await app(store)
  t.teardown(async () => { await server.close(); await other.close() })

  await t.test('both slots held by attempts in flight elsewhere: a request waits, and is admitted when one ends', async (t) => {
    const key = userCounter('held')
    t.ok((await other.reserve(key, 2, WINDOW)).taken)
    t.ok((await other.reserve(key, 2, WINDOW)).taken)
    const pending = server.inject({ url: '/', headers: { authorization: basicHeader('held', 'right') } })
    // Before: no slot and none held by this instance meant 429 at once (for the rest of the window).
    const gate = (server as unknown as Record<symbol, FailureGates>)[kFailureGates]?.user as SharedAttempts
    await retryUntil('the request to find both slots held and wait', async () => gate.held === 1, 10_000)
    t.notOk((await other.reserve(key, 2, WINDOW)).taken, 'no third slot')
    await other.settle(key, false, WINDOW) // the other instance's attempt succeeded
    const res = await pending
    t.equal(res.statusCode, 200, 'admitted once a slot was given back, not refused')
    await other.settle(key, false, WINDOW)
  })

  await t.test('refusals alone spend the budget: 429 with a Retry-After near the window', async (t) => {
    const bad = { authorization: basicHeader('spent', 'wrong') }
    t.equal((await server.inject({ url: '/', headers: bad })).statusCode, 401)
    t.equal((await server.inject({ url: '/', headers: bad })).statusCode, 401)
    const refused = await server.inject({ url: '/', headers: { authorization: basicHeader('spent', 'right') } })
    t.equal(refused.statusCode, 429, 'even the right password waits for the window')
    const retryAfter = Number(refused.headers['retry-after'])
    t.ok(retryAfter > 1 && retryAfter <= WINDOW / 1000, `Retry-After ${retryAfter} s is the rest of the window`)
  })

  await t.test('the refusal is in Redis when the 401 arrives, and no slot is left held', async (t) => {
    const res = await server.inject({ url: '/', headers: { authorization: basicHeader('counted', 'wrong') } })
    t.equal(res.statusCode, 401)
    const client = redis.client()
    t.same(await client.hgetall('sb:' + userCounter('counted')), { f: '1', p: '0' })
    const success = await server.inject({ url: '/', headers: { authorization: basicHeader('counted', 'right') } })
    t.equal(success.statusCode, 200)
    // A success gives its slot back in the background (its reply does not wait for it): bounded wait.
    await retryUntil('the slot to be given back', async () => (await client.hget('sb:' + userCounter('counted'), 'p')) === '0', 10_000)
    t.same(await client.hgetall('sb:' + userCounter('counted')), { f: '1', p: '0' }, 'a success gives its slot back and counts nothing')
  })

  await t.test('successful attempts leave no counter behind', async (t) => {
    const client = redis.client()
    for (let i = 0; i < 3; i++) {
      t.equal((await server.inject({ url: '/', headers: { authorization: basicHeader('honest', 'right') } })).statusCode, 200)
    }
    await retryUntil('the slots to be given back', async () => (await client.exists('sb:' + userCounter('honest'))) === 0, 10_000)
    t.equal(await client.exists('sb:' + userCounter('honest')), 0, 'no refusal, nothing in flight: no key')
  })

  await t.test('a counter written by 0.1 (a plain INCR string) keeps its count and its window', async (t) => {
    const client = redis.client()
    const key = 'sb:' + userCounter('legacy')
    await client.set(key, '2', 'PX', 30_000)
    const res = await server.inject({ url: '/', headers: { authorization: basicHeader('legacy', 'right') } })
    t.equal(res.statusCode, 429, 'two refusals counted by 0.1 still spend a budget of 2')
    t.equal(await client.type(key), 'hash')
    const ttl = await client.pttl(key)
    t.ok(ttl > 0 && ttl <= 30_000, `its window is kept (${ttl} ms left)`)
  })
})
