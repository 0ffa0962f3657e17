// [Issue 18, finding 3: Redis eviction erased revocations] Every key the plugin writes has a TTL,
// so both `volatile-*` (a common managed-Redis default) and `allkeys-*` policies may evict a
// revocation or a "log out everywhere" time under memory pressure — the review got a revoked token
// and a pre-revokeAll token accepted again. Before the fix registration said nothing; now an
// evicting policy is refused at registration (unless `allowEviction: true`, which logs a warning),
// and under `noeviction` a full Redis fails writes closed (503) while every revocation stays.
// On every topology: on a Cluster every master is asked (and limited), on Sentinel the primary.
import t from 'tap'
import { Writable } from 'node:stream'
import type { Cluster } from 'ioredis'
import Fastify from 'fastify'
import multiauth, { RedisStore } from '../../src/index.js'
import { basicHeader } from '../helpers/app.js'
import { eachTopology } from '../helpers/redis-topology.js'
import { SECRET } from '../helpers/tokens.js'

eachTopology(t, 'Redis eviction', async (t, redis) => {
  t.test('an evicting maxmemory-policy is refused at registration; allowEviction accepts it with a warning', async (t) => {
    for (const policy of ['allkeys-lru', 'volatile-lru', 'volatile-ttl', 'allkeys-random']) {
      await redis.configSet('maxmemory-policy', policy) // every data node
      const store = new RedisStore(redis.storeOptions())
      t.teardown(() => store.close())
      const app = Fastify()
      await t.rejects(async () => {
        await app.register(multiauth, { store, token: { secret: SECRET, revocation: true, findUser: () => ({}) } })
      }, { code: 'FST_MULTIAUTH_INVALID_OPTION', message: new RegExp(`maxmemory-policy is "${policy}"`) }, policy)
      await app.close()

      const lines: string[] = []
      const lenient = new RedisStore(redis.storeOptions({ allowEviction: true }))
      t.teardown(() => lenient.close())
      const accepted = Fastify({ logger: { level: 'warn', stream: new Writable({ write (c, _e, cb) { lines.push(String(c)); cb() } }) } })
      await accepted.register(multiauth, { store: lenient, token: { secret: SECRET, revocation: true, findUser: () => ({}) } })
      await accepted.close()
      t.match(lines.join(''), /maxmemory-policy can evict security state/, `${policy} with allowEviction: a warning`)
    }

    if (redis.name === 'cluster') {
      // Each master in turn is the only one that evicts: registration must ask every master, not
      // the one a first command happens to reach.
      await redis.configSet('maxmemory-policy', 'noeviction')
      const client = redis.client() as Cluster
      await client.ping() // the slot map, hence the masters, is known once a command went through
      const masters = client.nodes('master')
      t.equal(masters.length, 3, 'three masters')
      for (const [i, master] of masters.entries()) {
        await master.config('SET', 'maxmemory-policy', 'allkeys-lru')
        const store = new RedisStore(redis.storeOptions())
        t.teardown(() => store.close())
        const app = Fastify()
        await t.rejects(async () => {
          await app.register(multiauth, { store, token: { secret: SECRET, revocation: true, findUser: () => ({}) } })
        }, { code: 'FST_MULTIAUTH_INVALID_OPTION', message: /maxmemory-policy is "allkeys-lru"/ }, `only master ${i + 1} of 3 evicts: refused`)
        await app.close()
        await master.config('SET', 'maxmemory-policy', 'noeviction')
      }
    }
  })

  t.test('noeviction under maxmemory: writes fail closed (503), no revocation is ever lost', async (t) => {
    // Every data node (each Cluster master holds a third of the keys: the first one full answers OOM).
    await redis.configSet('maxmemory-policy', 'noeviction')
    await redis.configSet('maxmemory', '3mb')
    const store = new RedisStore(redis.storeOptions())
    t.teardown(() => store.close())
    const app = Fastify()
    await app.register(multiauth, {
      store,
      basic: { verify: (u, p) => p === 'pw' ? { id: u } : null },
      token: { secret: SECRET, routes: true, refresh: true, revocation: true, findUser: (claims) => ({ id: claims.sub }) }
  })
    app.get('/me', { onRequest: app.authGuard(['token']) }, async () => 'ok')
    t.teardown(() => app.close())
    const login = async (user: string) => await app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader(user, 'pw') } })
    const revoked = (await login('victim')).json()
    await app.authTokens.revoke(JSON.parse(Buffer.from(revoked.token.split('.')[1], 'base64url').toString()))
    const beforeReset = (await login('reset')).json()
    await app.authTokens.revokeAll('reset')
    const me = async (token: string) => (await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })).statusCode
    t.equal(await me(revoked.token), 401)
    t.equal(await me(beforeReset.token), 401)

    // Many users logging in until Redis is full (bounded: at most 50,000 logins).
    const statuses = new Map<number, number>()
    let full = false
    for (let i = 0; i < 50_000 && !full; i++) {
      const status = (await login(`user${i}`)).statusCode
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      full = status === 503
    }
    t.comment(`logins until Redis was full: ${JSON.stringify(Object.fromEntries(statuses))}`)
    t.ok(full, 'Redis filled up: a login that must write got 503 (OOM), not a token without its refresh family')
    t.same([...statuses.keys()].filter((s) => s !== 200 && s !== 503), [], 'only 200 and 503')
    // Refused either way: 401, or 503 when the refusal's failure count (the per-IP budget, in the
    // same full Redis) cannot be written. Never a 200.
    const refusedWhenFull = [await me(revoked.token), await me(beforeReset.token)]
    t.ok([401, 503].includes(refusedWhenFull[0] as number), `the revoked token is still refused when Redis is full (${String(refusedWhenFull[0])})`)
    t.ok([401, 503].includes(refusedWhenFull[1] as number), `and so is the token issued before "log out everywhere" (${String(refusedWhenFull[1])})`)
  })
})
