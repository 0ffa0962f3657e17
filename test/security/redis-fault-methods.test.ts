// Faults for the stateful methods: Redis SIGKILLed and restarted under load (real HTTP,
// loopback) while JWTs (with revocation) and cookie sessions are checked against it, on every
// topology (standalone, Cluster: every master, Sentinel: primary and replica).
// A revoked token, a destroyed session and an expired session never get a 200 (before,
// during or after the outage); only 503 while Redis is down; no 500; recovery without a
// restart. Phases, not time windows: see test/helpers/fault-run.ts and phased-load.ts.
// (API keys under the same fault: redis-fault.test.ts.)
import t from 'tap'
import { createHash } from 'node:crypto'
import Fastify from 'fastify'
import multiauth, { RedisStore } from '../../src/index.js'
import { FAULT_PHASES, faultRun } from '../helpers/fault-run.js'
import { PhasedLoad, retryUntil } from '../helpers/phased-load.js'
import { eachTopology } from '../helpers/redis-topology.js'
import { cookieFrom, SESSION_SECRET } from '../helpers/session-app.js'

const TOKEN_SECRET = 'fault-test-secret-of-32-bytes-or-more!'

eachTopology(t, '[ASVS 4.0.3 V4.1.5 fail securely, RFC 7009 §2.2 revocation, ASVS V3.3.1] Redis killed under load: tokens and sessions', async (t, redis) => {
  const store = new RedisStore(redis.storeOptions())
  t.teardown(() => store.close())

  const users = new Map([['ann', { id: 'ann' }], ['bob', { id: 'bob' }], ['cyd', { id: 'cyd' }], ['dee', { id: 'dee' }]])
  const app = Fastify()
  await app.register(multiauth, {
    store,
    token: { secret: TOKEN_SECRET, revocation: true, findUser: (claims) => users.get(claims.sub) ?? null },
    session: { secret: SESSION_SECRET, secure: false, findUser: (id) => users.get(id) ?? null }
  })
  app.post<{ Body: { id: string } }>('/login', async (request) => { await app.authSessions.login(request, users.get(request.body.id) as { id: string }); return 'ok' })
  app.post('/logout', async (request) => { await app.authSessions.logout(request); return 'ok' })
  app.get('/tok', { onRequest: app.authGuard(['token']) }, async () => 'ok')
  app.get('/sess', { onRequest: app.authGuard(['session']) }, async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const validToken = (await app.authTokens.issue({ id: 'ann' })).accessToken
  const revokedToken = (await app.authTokens.issue({ id: 'bob' })).accessToken
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
  // Wait for the event, not for a guessed time: Redis reports the key gone once its 1 ms TTL has passed.
  await retryUntil('the expired session\'s entry to expire', async () => await store.client.exists(expiredKey) === 0, 10_000, 5)

  const load = new PhasedLoad(base, {
    'token valid': { path: '/tok', headers: { authorization: `Bearer ${validToken}` } },
    'token revoked': { path: '/tok', headers: { authorization: `Bearer ${revokedToken}` } },
    'token revoked during the run': { path: '/tok', headers: { authorization: `Bearer ${laterRevoked.accessToken}` } },
    'session valid': { path: '/sess', headers: { cookie: validSession } },
    'session destroyed (logout)': { path: '/sess', headers: { cookie: destroyedSession } },
    'session expired': { path: '/sess', headers: { cookie: expiredSession } }
  }, { phases: FAULT_PHASES, workersPerTarget: 2 })
  t.teardown(() => load.stop())

  await faultRun(t, load, {
    redis,
    valid: ['token valid', 'session valid'],
    refused: ['token revoked', 'session destroyed (logout)', 'session expired'],
    revokedDuringRun: 'token revoked during the run',
    revoke: async () => { await app.authTokens.revoke(decode(laterRevoked.accessToken)) }
  })
  // Revocations and sessions must survive a Redis restart: append-only file, fsync always.
}, { persist: true })
