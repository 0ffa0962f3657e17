// [Issue 18, finding 3: a shared Redis cannot be filled by one user] Before, every rotation left
// two keys behind for the whole refresh lifetime (the spent token's record and its "used" marker),
// and a user could start any number of refresh families: 12,000 POST /tokens by one user filled
// Redis. Now a family is ONE record (the hash of its current token), rotation replaces it
// atomically (compare-and-set), and each user has at most `refresh.maxFamilies` live families
// (the oldest is revoked). Real Redis (standalone, Cluster, Sentinel); two instances for the concurrent rotations.
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { RedisStore } from '../../src/index.js'
import { basicHeader } from '../helpers/app.js'
import { eachTopology } from '../helpers/redis-topology.js'
import { SECRET } from '../helpers/tokens.js'

eachTopology(t, 'refresh families in real Redis: constant keys per family, a cap per user, one winner per token', async (t, redis) => {
  const apps: FastifyInstance[] = []
  const stores: RedisStore[] = []
  for (let i = 0; i < 2; i++) {
    const store = new RedisStore(redis.storeOptions())
    const app = Fastify()
    await app.register(multiauth, {
      store,
      basic: { verify: (u, p) => p === 'pw' ? { id: u } : null },
      token: { secret: SECRET, routes: true, refresh: { maxFamilies: 5 }, findUser: (claims) => ({ id: claims.sub }) }
    })
    await app.ready()
    t.teardown(async () => { await app.close(); await store.close() })
    apps.push(app)
    stores.push(store)
  }
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const redisClient = (stores[0] as RedisStore).client
  const login = async (user: string) => (await a.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader(user, 'pw') } })).json()
  const refresh = async (app: FastifyInstance, token: string) => await app.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: token } })
  const keys = async () => await redis.keys('multiauth:tok:*') // on every primary (sorted)

  await t.test('100 rotations of one family leave exactly the keys one rotation leaves', async (t) => {
    await redis.flush()
    let current = (await login('ann')).refresh_token as string
    const afterLogin = await keys()
    t.same(afterLogin.map((k) => k.replace(/:[^:]+$/, ':*')), ['multiauth:tok:rf:*', 'multiauth:tok:{u:ann}:*'], 'one family record and the user\'s family list')
    for (let i = 0; i < 100; i++) {
      const res = await refresh(i % 2 === 0 ? a : b, current)
      t.equal(res.statusCode, 200)
      current = res.json().refresh_token
    }
    t.same(await keys(), afterLogin, 'no key per rotation: the same two keys')
    const bytes = await redisClient.memory('USAGE', afterLogin.find((k) => k.includes(':rf:')) as string)
    t.comment(`one family record: ${String(bytes)} bytes in Redis (MEMORY USAGE)`)
    t.ok(Number(bytes) < 1024, 'a family costs well under 1 KiB')
  })

  await t.test('a user cannot fill Redis: beyond maxFamilies the oldest family is revoked', async (t) => {
    await redis.flush()
    const families: string[] = []
    for (let i = 0; i < 40; i++) families.push((await login('mallory')).refresh_token)
    const stored = (await keys()).filter((k) => k.includes(':rf:'))
    t.equal(stored.length, 5, '40 logins, 5 family records kept')
    for (const [i, token] of families.entries()) {
      const res = await refresh(b, token)
      t.equal(res.statusCode, i < 35 ? 400 : 200, `login ${i + 1}: ${i < 35 ? 'revoked (oldest)' : 'live'}`)
    }
    const other = await login('ann')
    t.equal((await refresh(a, other.refresh_token)).statusCode, 200, 'another user\'s families are untouched')
  })

  await t.test('the same refresh token presented concurrently on two instances: at most one rotation, then the family is dead', async (t) => {
    await redis.flush()
    for (let trial = 0; trial < 5; trial++) {
      const token = (await login('ann')).refresh_token as string
      const results = await Promise.all(Array.from({ length: 10 }, async (_, i) => await refresh(i % 2 === 0 ? a : b, token)))
      const winners = results.filter((r) => r.statusCode === 200)
      t.ok(winners.length <= 1, `trial ${trial}: ${winners.length} of 10 rotated (at most one)`)
      t.ok(results.every((r) => r.statusCode === 200 || r.json().error === 'invalid_grant'), 'the others are invalid_grant')
      if (winners.length === 1) {
        const next = (winners[0] as (typeof results)[number]).json().refresh_token
        t.equal((await refresh(a, next)).statusCode, 400, `trial ${trial}: the reuse killed the family, the winner's new token too`)
      }
    }
  })
})
