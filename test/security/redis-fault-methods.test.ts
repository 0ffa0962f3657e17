// Faults for the stateful methods: redis-server SIGKILLed and restarted under autocannon
// load while JWTs (with revocation) and cookie sessions are checked against it. A revoked
// token, a destroyed session and an expired session never get a 200 (before, during or
// after the outage); only 503 while Redis is down; no 500; recovery without a restart.
// (API keys under the same fault: redis-fault.test.ts.)
import t from 'tap'
import autocannon from 'autocannon'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import multiauth, { login, logout, RedisStore } from '../../src/index.js'
import { redisSkipReason, startRedis } from '../helpers/redis.js'
import { cookieFrom, SESSION_SECRET } from '../helpers/session-app.js'

const COMMAND_TIMEOUT = 300
const UP_MS = 2500
const DOWN_MS = 3000
const AFTER_MS = 4000
const TOKEN_SECRET = 'fault-test-secret-of-32-bytes-or-more!'

interface Hit { at: number, status: number }

t.test('[ASVS 4.0.3 V4.1.5 fail securely, RFC 7009 §2.2 revocation, ASVS V3.3.1] redis-server killed under load: tokens and sessions', { skip: redisSkipReason() }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'multiauth-fault-methods-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // Revocations and sessions must survive a Redis restart: append-only file, fsync always.
  const redis = await startRedis({ persistDir: dir })
  t.teardown(() => redis.stop())
  const store = new RedisStore({ connection: redis.url, commandTimeout: COMMAND_TIMEOUT })
  t.teardown(() => store.close())

  const users = new Map([['ann', { id: 'ann' }], ['bob', { id: 'bob' }], ['cyd', { id: 'cyd' }], ['dee', { id: 'dee' }]])
  const app = Fastify()
  await app.register(multiauth, {
    store,
    token: { secret: TOKEN_SECRET, revocation: true, lookup: (claims) => users.get(claims.sub) ?? null },
    session: { secret: SESSION_SECRET, secure: false, lookup: (id) => users.get(id) ?? null }
  })
  app.post<{ Body: { id: string } }>('/login', async (request) => { await login(request, users.get(request.body.id) as { id: string }); return 'ok' })
  app.post('/logout', async (request) => { await logout(request); return 'ok' })
  app.get('/tok', { onRequest: app.authGuard(['token']) }, async () => 'ok')
  app.get('/sess', { onRequest: app.authGuard(['session']) }, async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const validToken = (await app.authTokens.issue({ id: 'ann' })).token
  const revokedToken = (await app.authTokens.issue({ id: 'bob' })).token
  const laterRevoked = await app.authTokens.issue({ id: 'cyd' })
  const decode = (jwt: string): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString())
  await app.authTokens.revoke(decode(revokedToken))
  const sessionOf = async (id: string): Promise<string> => cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id } }), 'sid') as string
  const validSession = await sessionOf('ann')
  const destroyedSession = await sessionOf('bob')
  t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie: destroyedSession } })).statusCode, 200)
  const expiredSession = await sessionOf('dee')
  // Expired: Redis drops the entry at its TTL, exactly as at the end of the idle timeout.
  const signed = decodeURIComponent(expiredSession.slice(4))
  const expiredKey = `multiauth:sess:${createHash('sha256').update(signed.slice(0, signed.lastIndexOf('.'))).digest('base64url')}`
  t.equal(await store.client.pexpire(expiredKey, 1), 1, 'the expired session\'s entry had a TTL to shorten')
  await sleep(20)

  const targets: Record<string, { path: string, headers: Record<string, string> }> = {
    'token valid': { path: '/tok', headers: { authorization: `Bearer ${validToken}` } },
    'token revoked': { path: '/tok', headers: { authorization: `Bearer ${revokedToken}` } },
    'token revoked during the run': { path: '/tok', headers: { authorization: `Bearer ${laterRevoked.token}` } },
    'session valid': { path: '/sess', headers: { cookie: validSession } },
    'session destroyed (logout)': { path: '/sess', headers: { cookie: destroyedSession } },
    'session expired': { path: '/sess', headers: { cookie: expiredSession } }
  }
  const t0 = performance.now()
  const hits: Record<string, Hit[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]))
  const duration = Math.ceil((UP_MS + DOWN_MS + AFTER_MS) / 1000)
  const runs = Object.entries(targets).map(([name, target]) => {
    const instance = autocannon({ url: base + target.path, connections: 2, duration, headers: target.headers, timeout: 5 })
    instance.on('response', (_client: unknown, status: number) => { hits[name]?.push({ at: performance.now() - t0, status }) })
    return instance
  })
  const done = Promise.all(runs.map(async (r) => await r))

  await sleep(UP_MS / 2)
  await app.authTokens.revoke(decode(laterRevoked.token))
  const revokedAt = performance.now() - t0
  await sleep(UP_MS / 2)
  await redis.stop()
  const killedAt = performance.now() - t0
  await sleep(DOWN_MS)
  const restartAt = performance.now() - t0
  await redis.restart()
  const restartedAt = performance.now() - t0
  await done
  const endedAt = performance.now() - t0

  const count = (list: Hit[]): Record<number, number> => list.reduce<Record<number, number>>((acc, h) => { acc[h.status] = (acc[h.status] ?? 0) + 1; return acc }, {})
  for (const [name, list] of Object.entries(hits)) t.comment(`${name}: ${JSON.stringify(count(list))}`)
  t.comment(`revoked at ${revokedAt.toFixed(0)} ms, killed at ${killedAt.toFixed(0)}, restart at ${restartAt.toFixed(0)}, up at ${restartedAt.toFixed(0)}, end ${endedAt.toFixed(0)}`)

  const all = Object.values(hits).flat()
  t.equal(all.filter((h) => h.status >= 500 && h.status !== 503).length, 0, 'no 500 (nor any 5xx but 503)')
  for (const name of ['token valid', 'session valid']) {
    t.same(Object.keys(count(hits[name] as Hit[])).sort(), ['200', '503'], `${name}: only 200 or 503`)
  }
  for (const name of ['token revoked', 'session destroyed (logout)', 'session expired']) {
    t.equal((hits[name] as Hit[]).filter((h) => h.status === 200).length, 0, `${name}: never a 200`)
    t.ok((hits[name] as Hit[]).every((h) => h.status === 401 || h.status === 503), `${name}: 401 or 503 only`)
  }
  t.equal((hits['token revoked during the run'] as Hit[]).filter((h) => h.status === 200 && h.at > revokedAt + 50).length, 0, 'a token revoked during the run: no 200 after the revocation, through the outage and after it')

  const down = all.filter((h) => h.at > killedAt + COMMAND_TIMEOUT + 500 && h.at < restartAt)
  t.ok(down.length > 20, `requests were answered while Redis was down (${down.length})`)
  t.same(down.filter((h) => h.status !== 503), [], 'only 503 while Redis is down')

  for (const name of ['token valid', 'session valid']) {
    const list = hits[name] as Hit[]
    t.ok(list.filter((h) => h.at < killedAt - 100 && h.status === 200).length > 20, `${name}: 200 before the outage`)
    const recovered = list.find((h) => h.at > restartedAt && h.status === 200)
    t.ok(recovered !== undefined, `${name}: 200 again after the restart, same process`)
    if (recovered !== undefined) t.comment(`${name}: recovered ${(recovered.at - restartedAt).toFixed(0)} ms after redis-server was back`)
    const lastSecond = list.filter((h) => h.at > endedAt - 1000)
    t.ok(lastSecond.length > 0 && lastSecond.every((h) => h.status === 200), `${name}: the last second is all 200`)
  }
})
