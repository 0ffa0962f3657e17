// Redis Cluster specifics (issue 13): the keys the plugin writes, and the hash slots of the keys it
// reads together; a Cluster client that reads from replicas refused; the eviction check asking
// every master; the revocation check as one MGET per request. A real three-master Cluster
// (test/helpers/redis-topology.ts); the behaviour shared with the other topologies is tested by
// the Redis-backed files through eachTopology.
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import type { ClusterNode } from 'ioredis'
import multiauth, { RedisStore } from '../src/index.js'
import type { MultiauthOptions } from '../src/index.js'
import { basicHeader } from './helpers/app.js'
import { root } from './helpers/example-process.js'
import { freePort } from './helpers/redis.js'
import { eachTopology } from './helpers/redis-topology.js'
import { captureLogs } from './helpers/security.js'
import { SESSION_SECRET } from './helpers/session-app.js'
import { SECRET } from './helpers/tokens.js'

const optionError = { code: 'FST_MULTIAUTH_INVALID_OPTION' }
const claimsOf = (jwt: string): { sub: string, jti: string, iat: number, exp: number } => JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString())

/** Every method the plugin stores state for, with every Redis-backed budget on. */
async function fullApp (store: RedisStore, extra: Partial<MultiauthOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(multiauth, {
    store,
    basic: { verify: (u, p) => p === 'pw' ? { id: u } : null },
    token: { secret: SECRET, routes: true, refresh: true, revocation: true, findUser: (claims) => ({ id: claims.sub }) },
    session: { secret: SESSION_SECRET, secure: false, findUser: (id) => ({ id }) },
    rateLimit: { perCredential: { max: 1000 }, failuresPerIp: { max: 1000 }, failuresPerUser: { max: 10 } },
    ...extra
  })
  app.get('/me', { onRequest: app.authGuard(['token']) }, async (request) => request.auth?.user ?? null)
  app.post<{ Body: { id: string } }>('/login', async (request) => { await app.authSessions.login(request, { id: request.body.id }); return 'ok' })
  await app.ready()
  return app
}

eachTopology(t, 'Redis Cluster: key layout, hash slots, replica reads, eviction check, one MGET per request', async (t, redis) => {
  const client = redis.client() as Cluster
  const slot = async (key: string): Promise<number> => await client.cluster('KEYSLOT', key) as number
  const { cluster: { nodes: seeds } } = redis.storeOptions() as { cluster: { nodes: ClusterNode[] } }
  const stores: RedisStore[] = []
  const apps: FastifyInstance[] = []
  t.teardown(async () => {
    for (const app of apps) await app.close()
    for (const store of stores) await store.close()
  })
  const open = async (extra: Partial<MultiauthOptions> = {}): Promise<FastifyInstance> => {
    const store = new RedisStore(redis.storeOptions())
    stores.push(store)
    const app = await fullApp(store, extra)
    apps.push(app)
    return app
  }
  const me = async (app: FastifyInstance, token: string): Promise<number> => (await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })).statusCode

  t.test('every key the plugin writes for one user; the keys read together share a hash slot', async (t) => {
    await redis.flush()
    const app = await open()
    const tokens = async (password: string) => await app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader('ann', password) } })
    t.equal((await tokens('wrong')).statusCode, 401, 'a refused password (failure counters)')
    const first = (await tokens('pw')).json()
    const second = (await tokens('pw')).json()
    t.equal(await me(app, first.token), 200, 'a bearer request with revocation on: one MGET, answered')
    const rotated = await app.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: second.refresh_token } })
    t.equal(rotated.statusCode, 200, 'refresh rotation (compare-and-set)')
    t.equal((await app.inject({ method: 'POST', url: '/tokens/revoke', headers: { authorization: `Bearer ${first.token}` } })).statusCode, 200, 'revocation of one access token')
    t.equal((await app.inject({ method: 'POST', url: '/tokens/revoke', headers: { authorization: `Bearer ${rotated.json().token}` }, payload: { all: true } })).statusCode, 200, '"log out everywhere"')
    t.equal((await app.inject({ method: 'POST', url: '/login', payload: { id: 'ann' } })).statusCode, 200, 'a session')
    t.equal(await me(app, first.token), 401, 'the revoked token is refused (not 503)')
    t.equal(await me(app, second.token), 401, 'so is one issued before "log out everywhere"')

    const keys = await redis.keys('*')
    t.comment(keys.join('\n'))
    const layout: Record<string, RegExp> = {
      revoked: /^multiauth:tok:\{u:ann\}:rv:[0-9a-f-]{36}$/,
      notBefore: /^multiauth:tok:\{u:ann\}:nb$/,
      families: /^multiauth:tok:\{u:ann\}:fs$/,
      family: /^multiauth:tok:rf:[A-Za-z0-9_-]{22}$/,
      session: /^multiauth:sess:[A-Za-z0-9_-]{43}$/,
      failuresPerIp: /^multiauth:rl:fail:ip:.+$/,
      failuresPerUser: /^multiauth:rl:fail:user:[A-Za-z0-9_-]{22}$/,
      perCredential: /^multiauth:rl:user:ann$/
    }
    for (const key of keys) t.ok(Object.values(layout).some((re) => re.test(key)), `a documented key: ${key}`)
    for (const [what, re] of Object.entries(layout)) t.ok(keys.some((key) => re.test(key)), `written: ${what}`)
    for (const key of keys) t.ok(await client.pttl(key) > 0, `has a TTL: ${key}`)

    const notBefore = keys.find((key) => layout.notBefore?.test(key)) as string
    const userSlot = await slot(notBefore)
    for (const key of keys.filter((k) => k.startsWith('multiauth:tok:{u:ann}:'))) t.equal(await slot(key), userSlot, `the user's token keys share one slot: ${key}`)
    const slots = new Set(await Promise.all(keys.map(slot)))
    t.ok(slots.size > 1, `the other keys spread over the Cluster (${slots.size} slots): this test would see a cross-slot read`)
  })

  t.test('rv and nb share a slot whatever the sub: braces, a leading }, empty-looking, unicode', async (t) => {
    await redis.flush() // "ann" logged out everywhere above, maybe in this very second
    const app = await open()
    const subs = ['ann', '{', '}', '}ann', '{ann}', '}{', '{}', 'a}b{c}', 'u:', ' ', '  ', '\t', '\u0000', '\u200b', 'é', '日本語', '👩‍💻', 'ann}:rv:x']
    for (const sub of subs) {
      const name = JSON.stringify(sub)
      const revoked = (await app.authTokens.issue({ id: sub })).accessToken
      const live = (await app.authTokens.issue({ id: sub })).accessToken
      t.equal(await me(app, live), 200, `${name}: a bearer request reads rv and nb in one MGET (a CROSSSLOT would be 503)`)
      await app.authTokens.revoke(claimsOf(revoked))
      t.equal(await me(app, revoked), 401, `${name}: the revoked token is refused`)
      t.equal(await me(app, live), 200, `${name}: the other token of the sub still passes`)
      await app.authTokens.revokeAll(sub)
      t.equal(await me(app, live), 401, `${name}: refused after "log out everywhere"`)
      const rv = `multiauth:tok:{u:${sub}}:rv:${claimsOf(revoked).jti}`
      const nb = `multiauth:tok:{u:${sub}}:nb`
      const keys = await redis.keys('*')
      t.ok(keys.includes(rv) && keys.includes(nb), `${name}: the keys are where the layout says`)
      const [rvSlot, nbSlot] = [await slot(rv), await slot(nb)]
      t.equal(rvSlot, nbSlot, `${name}: rv and nb in one slot (${rvSlot})`)
    }
  })

  t.test('a client that reads from replicas is refused with an option error', async (t) => {
    for (const scaleReads of ['slave', 'all'] as const) {
      const replicaReader = new Cluster(seeds, { scaleReads, lazyConnect: true })
      t.throws(() => new RedisStore({ client: replicaReader }), { ...optionError, message: new RegExp(`Cluster client reads from replicas \\(scaleReads: "${scaleReads}"\\).*Use scaleReads: 'master'`) }, `client, scaleReads: '${scaleReads}'`)
      t.throws(() => new RedisStore({ cluster: { nodes: seeds, options: { scaleReads, lazyConnect: true } } }), { ...optionError, message: /scaleReads/ }, `cluster options, scaleReads: '${scaleReads}'`)
    }
    const custom = new Cluster(seeds, { scaleReads: () => undefined, lazyConnect: true })
    t.throws(() => new RedisStore({ client: custom }), { ...optionError, message: /scaleReads: a function/ }, 'a scaleReads function')
    const sentinels = [{ host: '127.0.0.1', port: await freePort() }]
    const replica = new Redis({ sentinels, name: 'primary', role: 'slave', lazyConnect: true })
    t.throws(() => new RedisStore({ client: replica }), { ...optionError, message: /reads from a replica \(role: 'slave' or readOnly\).*Use the primary/ }, 'a Sentinel client with role: \'slave\'')
    t.throws(() => new RedisStore({ connection: { sentinels, name: 'primary', role: 'slave', lazyConnect: true } }), { ...optionError, message: /role: 'slave'/ }, 'Sentinel connection options with role: \'slave\'')
    t.throws(() => new RedisStore({ client: new Redis({ readOnly: true, lazyConnect: true }) }), { ...optionError, message: /readOnly/ }, 'readOnly')
    const primaryReader = new RedisStore({ client: new Cluster(seeds, { scaleReads: 'master', lazyConnect: true }) })
    t.ok(primaryReader, 'control: scaleReads \'master\' is accepted')
  })

  t.test('a refused store leaves no connection of its own behind: the process exits by itself', async (t) => {
    // The store creates its client before it can look at the client's options: on a refusal it
    // must end that client, or it keeps connecting (and retrying) with no error listener.
    const refusedOptions = [
      { cluster: { nodes: seeds, options: { scaleReads: 'slave' } } },
      { connection: { sentinels: [{ host: '127.0.0.1', port: await freePort() }], name: 'primary', role: 'slave' } }
    ]
    const script = `import { RedisStore } from './src/index.js'
const codes = []
for (const options of JSON.parse(process.env.REFUSED)) {
  try { new RedisStore(options) } catch (err) { codes.push(err.code) }
}
console.log(JSON.stringify(codes))`
    // A deadline, not a window: the child exits within seconds (tsx start-up) or, holding a
    // client, never; 30 s tells the two apart on a loaded machine.
    const run = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root, env: { ...process.env, REFUSED: JSON.stringify(refusedOptions) }, timeout: 30_000
    }).then((res) => ({ ...res, code: 0 }), (err: { stdout: string, stderr: string, code: unknown, signal: unknown }) => err)
    t.equal(run.code, 0, `exited by itself (signal ${String((run as { signal?: unknown }).signal)})`)
    t.same(JSON.parse(run.stdout.trim() || 'null'), [optionError.code, optionError.code], 'both refused with an option error')
    t.notMatch(run.stderr, /Unhandled error event/, 'and no ioredis client left behind reported errors')
  })

  t.test('eviction: one evicting master of three is enough to refuse registration; allowEviction accepts it with a warning', async (t) => {
    await client.ping() // the slot map, hence the masters
    const masters = client.nodes('master')
    t.equal(masters.length, 3, 'three masters')
    const register = async (allowEviction: boolean): Promise<{ app: FastifyInstance, logs: ReturnType<typeof captureLogs>, store: RedisStore }> => {
      const store = new RedisStore(redis.storeOptions({ allowEviction }))
      stores.push(store)
      const logs = captureLogs('warn')
      const app = Fastify({ logger: logs.logger })
      apps.push(app)
      await app.register(multiauth, { store, token: { secret: SECRET, revocation: true, findUser: () => ({}) } })
      return { app, logs, store }
    }
    const clean = await register(false)
    await clean.app.ready()
    t.notMatch(clean.logs.text(), /maxmemory-policy/, 'control: every master noeviction → accepted, no warning')
    for (const [i, master] of masters.entries()) {
      await master.config('SET', 'maxmemory-policy', 'allkeys-lru')
      try {
        await t.rejects(register(false), { ...optionError, message: /maxmemory-policy is "allkeys-lru"/ }, `only master ${i + 1} of 3 evicting: refused`)
        const lenient = await register(true)
        await lenient.app.ready()
        t.match(lenient.logs.text(), /maxmemory-policy can evict security state/, `only master ${i + 1} evicting, allowEviction: accepted with a warning`)
      } finally {
        await master.config('SET', 'maxmemory-policy', 'noeviction')
      }
    }
  })

  t.test('a bearer request with revocation on makes exactly one MGET, summed over every master', async (t) => {
    const app = await open({ rateLimit: false })
    const N = 30
    // Many subs, so the MGETs land on every master.
    const tokens = await Promise.all(Array.from({ length: N }, async (_, i) => (await app.authTokens.issue({ id: `user-${i}` })).accessToken))
    for (const token of tokens.slice(0, 10)) await app.authTokens.revoke(claimsOf(token))
    await client.ping() // the slot map
    const masterOf = async (token: string): Promise<string> => String((client.slots[await slot(`multiauth:tok:{u:${claimsOf(token).sub}}:nb`)] as string[])[0])
    const masters = new Set(await Promise.all(tokens.map(masterOf)))
    t.equal(masters.size, 3, 'the users\' keys are spread over all three masters')
    const [mgetBefore, getBefore] = [await redis.commandCalls('mget'), await redis.commandCalls('get')]
    const statuses = []
    for (const token of tokens) statuses.push(await me(app, token))
    t.same(statuses, tokens.map((_, i) => i < 10 ? 401 : 200), '10 revoked (401), 20 live (200)')
    t.equal(await redis.commandCalls('mget') - mgetBefore, N, `${N} requests → ${N} MGETs`)
    t.equal(await redis.commandCalls('get') - getBefore, 0, 'and no GET: the check is that one round trip')
  })
}, { only: ['cluster'] })
