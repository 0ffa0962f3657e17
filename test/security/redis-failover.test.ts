// Failover semantics with real Sentinel and Cluster topologies (issue 13, "Sentinel / failover"):
//  (a) a primary killed under load: every request answers 503 or succeeds against the new primary,
//      never a 200 for a revoked token, a "log out everywhere", a logged-out session or a spent
//      failure budget; service resumes without restarting the app; revocations acknowledged by a
//      replica (waitForReplicas) before the kill still hold after it.
//  (b) waitForReplicas refuses (503) while no replica can acknowledge, and a retry succeeds once
//      one can; without any replica (standalone, a Cluster of three masters) it always refuses.
//  (c) Sentinel: what a failover loses WITHOUT waitForReplicas, shown deterministically (the
//      replica is cut off before the revocation, so it can never have it), and what the client of
//      a store WITH it is told instead (503, then a retry that succeeds once a replica is back).
// Every wait has a deadline; assertions are on statuses and counts, durations are only reported.
import t from 'tap'
import { performance } from 'node:perf_hooks'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import multiauth, { RedisStore } from '../../src/index.js'
import type { RedisStoreOptions } from '../../src/index.js'
import { sha256Text } from '../../src/lib/hash.js'
import { hashId } from '../../src/methods/session/store-adapter.js'
import { basicHeader } from '../helpers/app.js'
import { PhasedLoad, retryUntil } from '../helpers/phased-load.js'
import type { Hit } from '../helpers/phased-load.js'
import { eachTopology } from '../helpers/redis-topology.js'
import type { RedisTopology } from '../helpers/redis-topology.js'
import { cookieFrom, SESSION_SECRET } from '../helpers/session-app.js'

const TOKEN_SECRET = 'failover-test-secret-of-32-bytes-or-more!'
const PASSWORD = 'pw-failover'
/** The per-username failure budget. A failover can leave at most one slot per load worker held (a release that could not reach Redis): far below it. */
const BUDGET = 10
/** Store commandTimeout (ms): the RedisStore default. */
const COMMAND_TIMEOUT = 1000
const WAIT = { replicas: 1, timeout: 500 } as const
/** Deadline of every wait: far above a failover (Sentinel down-after 1 s, Cluster node timeout 2 s, plus election). */
const DEADLINE_MS = 60_000
/** A durable write that cannot be acknowledged answers within WAIT.timeout + COMMAND_TIMEOUT (a timer); this only catches a hang. */
const HANG_MS = 15_000

const PREFIX = 'multiauth:'
/** The token keys of `sub` share the hash tag {u:<sub>}: one slot, one master. */
const tokenKey = (sub: string): string => `${PREFIX}tok:{u:${sub}}:nb`
/** The per-username failure counter (rate-limit/index.ts: NFC, lower case, SHA-256, 22 characters). */
const budgetKey = (username: string): string => `${PREFIX}rl:fail:user:${sha256Text(username.normalize('NFC').toLowerCase(), 'base64url').slice(0, 22)}`
/** The session's key, from its `sid=<id>.<signature>` cookie. */
const sessionKey = (cookie: string): string => {
  const signed = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1))
  return PREFIX + hashId(signed.slice(0, signed.lastIndexOf('.')))
}

interface Instance {
  base: string
  inject: FastifyInstance['inject']
  issue: (sub: string) => Promise<{ accessToken: string, refreshToken?: string }>
  status: (path: string, headers: Record<string, string>) => Promise<number>
  /** RFC 7009 revocation of an access token (in the body, so it can be retried once it is refused). */
  revoke: (token: string) => Promise<number>
  revokeRefresh: (refreshToken: string) => Promise<number>
  /** "Log out everywhere" with a Bearer token of the user. */
  revokeAll: (token: string) => Promise<number>
  login: (id: string) => Promise<string>
  logout: (cookie: string) => Promise<number>
}

/** An app instance on its own RedisStore: token (revocation, refresh, routes), session, Basic with a per-username budget. */
async function instance (t: Test, redis: RedisTopology, extra: Partial<RedisStoreOptions> = {}): Promise<Instance> {
  const store = new RedisStore(redis.storeOptions({ commandTimeout: COMMAND_TIMEOUT, ...extra }))
  const user = (id: string): { id: string } => ({ id })
  const app = Fastify()
  await app.register(multiauth, {
    store,
    basic: { verify: (username, password) => password === PASSWORD ? user(username) : null },
    token: { secret: TOKEN_SECRET, routes: true, refresh: true, revocation: true, findUser: (claims) => user(claims.sub) },
    session: { secret: SESSION_SECRET, secure: false, findUser: (id) => user(id) },
    // Only the per-username budget: the load's revoked credentials all come from 127.0.0.1.
    rateLimit: { failuresPerIp: false, failuresPerUser: { max: BUDGET, timeWindow: '1 hour' } }
  })
  app.post<{ Body: { id: string } }>('/login', async (request) => { await app.authSessions.login(request, user(request.body.id)); return 'ok' })
  app.post('/logout', async (request) => { await app.authSessions.logout(request); return 'ok' })
  app.get('/tok', { onRequest: app.authGuard(['token']) }, async () => 'ok')
  app.get('/sess', { onRequest: app.authGuard(['session']) }, async () => 'ok')
  app.get('/basic', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close(); await store.close() })
  const post = async (url: string, payload: unknown, headers: Record<string, string> = {}): Promise<number> => (await app.inject({ method: 'POST', url, payload: payload as object, headers })).statusCode
  return {
    base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`,
    inject: app.inject.bind(app),
    issue: async (sub) => await app.authTokens.issue(user(sub)),
    status: async (url, headers) => (await app.inject({ url, headers })).statusCode,
    revoke: async (token) => await post('/tokens/revoke', { token }),
    revokeRefresh: async (refreshToken) => await post('/tokens/revoke', { refresh_token: refreshToken }),
    revokeAll: async (token) => await post('/tokens/revoke', { all: true }, { authorization: `Bearer ${token}` }),
    login: async (id) => {
      const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id } }), 'sid')
      if (cookie === undefined) throw new Error(`login of ${id} set no session cookie`)
      return cookie
    },
    logout: async (cookie) => await post('/logout', {}, { cookie })
  }
}

/** Runs `call` and measures it (ms, for t.comment). */
async function timed<T> (call: () => Promise<T>): Promise<{ value: T, ms: number }> {
  const start = performance.now()
  const value = await call()
  return { value, ms: Math.round(performance.now() - start) }
}

const statusCounts = (hits: Hit[]): string => JSON.stringify(hits.reduce<Record<number, number>>((acc, h) => { acc[h.status] = (acc[h.status] ?? 0) + 1; return acc }, {}))

eachTopology(t, 'failover', async (t, redis) => {
  t.test('(b) waitForReplicas: 503 while no replica can acknowledge, 200 on a retry once one can', async (t) => {
    const app = await instance(t, redis, { waitForReplicas: WAIT })
    const revoked = await app.issue('b-revoked')
    const loggedOutEverywhere = await app.issue('b-everywhere')
    const valid = await app.issue('b-valid')
    const session = await app.login('b-session')
    const relogin = await app.login('b-relogin')
    await redis.replicated()

    await redis.pauseReplicas() // SIGSTOP: connected, but nothing acknowledges
    t.teardown(() => { redis.resumeReplicas() })
    const refused = await timed(async () => await app.revoke(revoked.accessToken))
    t.equal(refused.value, 503, 'an access-token revocation answers 503 while no replica can acknowledge it')
    t.ok(refused.ms < HANG_MS, `and answers (${refused.ms} ms; WAIT timeout ${WAIT.timeout} + commandTimeout ${COMMAND_TIMEOUT})`)
    t.comment(`revoke with the replica paused: ${refused.value} after ${refused.ms} ms`)
    const all = await timed(async () => await app.revokeAll(loggedOutEverywhere.accessToken))
    t.equal(all.value, 503, `"log out everywhere" answers 503 too (${all.ms} ms)`)
    const logout = await timed(async () => await app.logout(session))
    t.equal(logout.value, 503, `a session logout answers 503 too (${logout.ms} ms)`)
    // Only the durable writes wait: reads go on against the primary. A login without a session
    // cookie destroys nothing, so it needs no acknowledgement; a re-login over a stored session
    // regenerates the id and destroys the old one (a tombstone, durable), so it waits like a logout.
    t.equal(await app.status('/tok', { authorization: `Bearer ${valid.accessToken}` }), 200, 'a valid token is still accepted')
    t.equal((await app.inject({ method: 'POST', url: '/login', payload: { id: 'b-other' } })).statusCode, 200, 'a first login (no session cookie) destroys nothing and answers 200')
    t.equal((await app.inject({ method: 'POST', url: '/login', payload: { id: 'b-relogin' }, headers: { cookie: relogin } })).statusCode, 503, 'a re-login over a stored session answers 503 (the pre-login id is destroyed durably)')
    // The 503 says "not known to be durable", not "not done": the primary has the revocation.
    t.equal(await app.status('/tok', { authorization: `Bearer ${revoked.accessToken}` }), 401, 'the primary refuses the token whose revocation answered 503')

    redis.resumeReplicas()
    const retries = await retryUntil('a retried revocation acknowledged by the resumed replica', async () => await app.revoke(revoked.accessToken) === 200, DEADLINE_MS)
    t.comment(`revocation acknowledged after ${retries} tries once the replica was resumed`)
    t.equal(await app.status('/tok', { authorization: `Bearer ${revoked.accessToken}` }), 401, 'the revoked token is refused')
    const fresh = await app.login('b-session-2')
    t.equal(await app.logout(fresh), 200, 'a logout is acknowledged again')
    t.equal(await app.status('/sess', { cookie: fresh }), 401, 'and its session is refused')
  })

  // Found while writing (b); src/methods/token/lifecycle.ts revokeRefreshToken. The first
  // revocation deletes the family on the primary and answers 503 (not acknowledged); its retry
  // found no family, wrote nothing, waited for nothing and answered 200, while the replica still
  // lacked the deletion: a failover then would bring the family back after a 200 "revoked" (the
  // retry's assertion failed before the fix: now the retry deletes again, durably).
  t.test('(b) a retried refresh-token revocation is not acknowledged before a replica has it', async (t) => {
    const app = await instance(t, redis, { waitForReplicas: WAIT })
    const family = await app.issue('b-family')
    await redis.replicated()
    await redis.pauseReplicas()
    t.teardown(() => { redis.resumeReplicas() })
    t.equal(await app.revokeRefresh(family.refreshToken as string), 503, 'a refresh-token revocation answers 503 while no replica can acknowledge it')
    t.equal(await app.revokeRefresh(family.refreshToken as string), 503, 'and so does its retry while none still can')
    redis.resumeReplicas()
    await retryUntil('the retried refresh-token revocation acknowledged', async () => await app.revokeRefresh(family.refreshToken as string) === 200, DEADLINE_MS)
  })

  t.test('(a) the primary killed under load: 503 or the new primary\'s answer, never a 200 for what was revoked', async (t) => {
    const app = await instance(t, redis, { waitForReplicas: WAIT })
    // On a Cluster only the killed master's slots fail over: every credential below keeps its
    // state on that master (its hash tag, or its key, lands there). Sentinel: there is one primary.
    let target = redis.primaryFor(tokenKey('a-revoked'))
    const pick = (prefix: string, keyOf: (name: string) => string): string => {
      for (let i = 0; i < 1000; i++) if (redis.primaryFor(keyOf(`${prefix}-${i}`)) === target) return `${prefix}-${i}`
      throw new Error(`no ${prefix} name whose key is on ${target}`)
    }
    const loginOnTarget = async (id: string): Promise<string> => {
      // A session id is random: a third of them lands on a given master of three (bounded).
      for (let i = 0; i < 100; i++) {
        const cookie = await app.login(id)
        if (redis.primaryFor(sessionKey(cookie)) === target) return cookie
      }
      throw new Error(`no session of ${id} on ${target} in 100 logins`)
    }
    const validToken = await app.issue(pick('a-valid', tokenKey))
    const revokedToken = await app.issue('a-revoked')
    const everywhereToken = await app.issue(pick('a-everywhere', tokenKey))
    const validSession = await loginOnTarget('a-session')
    const loggedOutSession = await loginOnTarget('a-logged-out')
    const basicUser = pick('a-basic', budgetKey)
    const spentUser = pick('a-spent', budgetKey)
    // Preparation through an instance without waitForReplicas (same Redis, same counters): a counted
    // refusal waits for a replica's acknowledgement, and WAIT's 500 ms is not a margin on a loaded
    // machine (`redis.replicated()` below makes the counters replicated before the kill).
    const preparing = await instance(t, redis)
    for (let i = 0; i < BUDGET; i++) t.equal(await preparing.status('/basic', { authorization: basicHeader(spentUser, 'wrong') }), 401, `wrong password ${i + 1} of ${BUDGET}`)
    t.equal(await app.status('/basic', { authorization: basicHeader(spentUser, PASSWORD) }), 429, 'the budget is spent: the right password answers 429')
    // Counters and sessions are ordinary writes (never waited for): the replica must have them
    // before the kill. The revocations below are not covered by this: they come after it, and
    // each answers 200 only once a replica acknowledged it.
    await redis.replicated()
    // Each answers 200 once a replica acknowledged it within WAIT's 500 ms; on a loaded machine one
    // may take a retry (a 503 there means "not known to be replicated", and the retry writes again).
    await retryUntil('revocation acknowledged by a replica', async () => await app.revoke(revokedToken.accessToken) === 200, DEADLINE_MS)
    await retryUntil('"log out everywhere" acknowledged by a replica', async () => await app.revokeAll(everywhereToken.accessToken) === 200, DEADLINE_MS)
    await retryUntil('logout acknowledged by a replica', async () => await app.logout(loggedOutSession) === 200, DEADLINE_MS)
    t.pass('revocation, "log out everywhere" and logout each acknowledged by a replica (200)')

    const valid = ['token valid', 'session valid', 'basic valid']
    const refused = { 'token revoked': 401, 'token before log out everywhere': 401, 'session logged out': 401, 'basic budget spent': 429 } as const
    // killing: the kill has begun (a client may see the socket close before the exit is reported);
    // killed: the primary's process has exited.
    const phases = ['up', 'killing', 'killed', 'recovered'] as const
    const load = new PhasedLoad(app.base, {
      'token valid': { path: '/tok', headers: { authorization: `Bearer ${validToken.accessToken}` } },
      'session valid': { path: '/sess', headers: { cookie: validSession } },
      'basic valid': { path: '/basic', headers: { authorization: basicHeader(basicUser, PASSWORD) } },
      'token revoked': { path: '/tok', headers: { authorization: `Bearer ${revokedToken.accessToken}` } },
      'token before log out everywhere': { path: '/tok', headers: { authorization: `Bearer ${everywhereToken.accessToken}` } },
      'session logged out': { path: '/sess', headers: { cookie: loggedOutSession } },
      'basic budget spent': { path: '/basic', headers: { authorization: basicHeader(spentUser, PASSWORD) } }
    }, { phases, workersPerTarget: 2 })
    t.teardown(() => load.stop())
    const targets = [...valid, ...Object.keys(refused)]
    const answered = (phase: typeof phases[number], n: number) => () => targets.every((target) => load.select({ target, sentIn: phase, answeredIn: phase }).length >= n)

    load.start()
    await load.until('20 answers per target before the kill', answered('up', 20), DEADLINE_MS)
    const killStart = performance.now()
    load.enter('killing')
    await redis.killPrimary(tokenKey('a-revoked'))
    load.enter('killed')
    const killed = performance.now()
    await redis.recovered()
    const promoted = performance.now()
    const probes = await retryUntil('a 200 for every valid credential after the failover', async () => {
      for (const target of valid) if ((await load.request(target)).status !== 200) return false
      return true
    }, DEADLINE_MS)
    const served = performance.now()
    load.enter('recovered')
    await load.until('100 answers per target after recovery', answered('recovered', 100), DEADLINE_MS)
    await load.stop()

    t.comment(`${redis.name}: kill took ${Math.round(killed - killStart)} ms; a replica promoted (topology serving) ${Math.round(promoted - killed)} ms after the kill; ` +
      `every valid credential answered 200 again ${Math.round(served - killed)} ms after the kill (${probes} probe rounds)`)
    for (const target of targets) t.comment(`${target}: ${statusCounts(load.select({ target }))}; during the failover: ${statusCounts(load.hits.filter((h) => h.target === target && h.sent >= load.at('killing') && h.sent < load.at('recovered')))}`)

    const none = (hits: Hit[], message: string): void => { t.equal(hits.length, 0, message, { examples: hits.slice(0, 5) }) }
    const besides = (hits: Hit[], ok: number[]): Hit[] => hits.filter((h) => !ok.includes(h.status))
    none(load.hits.filter((h) => h.status === 0), 'every request was answered')
    none(besides(load.hits, [200, 401, 429, 503]), 'only 200, 401, 429 and 503: no 500')
    for (const [target, status] of Object.entries(refused)) {
      none(besides(load.select({ target }), [status, 503]), `${target}: never a 200, in any phase (${status} or 503)`)
      none(besides(load.select({ target, sentIn: 'up', answeredIn: 'up' }), [status]), `${target}: ${status} before the kill`)
      const after = load.select({ target, sentIn: 'recovered' })
      t.ok(after.length >= 100, `${target}: ${after.length} answers after recovery`)
      none(besides(after, [status]), `${target}: ${status} after the failover (the new primary has it)`)
    }
    for (const target of valid) {
      none(besides(load.select({ target }), [200, 503]), `${target}: 200 or 503, in any phase`)
      none(besides(load.select({ target, sentIn: 'up', answeredIn: 'up' }), [200]), `${target}: 200 before the kill`)
      const after = load.select({ target, sentIn: 'recovered' })
      t.ok(after.length >= 100, `${target}: ${after.length} answers after recovery`)
      none(besides(after, [200]), `${target}: 200 after the failover, same process`)
    }

    // The promoted replica has no replica of its own: a durable write cannot be acknowledged
    // until the old primary is back (as a replica of the new one).
    target = redis.primaryFor(tokenKey('a-revoked'))
    const next = await app.issue(pick('a-next', tokenKey))
    t.equal(await app.revoke(next.accessToken), 503, 'after the failover no replica is left: a revocation answers 503')
    const upStart = performance.now()
    await redis.up()
    const tries = await retryUntil('a revocation acknowledged once the old primary is back as a replica', async () => await app.revoke(next.accessToken) === 200, DEADLINE_MS)
    t.comment(`old primary restarted; a revocation acknowledged ${Math.round(performance.now() - upStart)} ms later (${tries} tries)`)
    t.equal(await app.status('/tok', { authorization: `Bearer ${next.accessToken}` }), 401, 'and the token is refused')
  })

  if (redis.name !== 'sentinel') return
  t.test('(c) what a failover loses without waitForReplicas, and what the client is told with it', async (t) => {
    const plain = await instance(t, redis)
    const durable = await instance(t, redis, { waitForReplicas: WAIT })
    const lost = await plain.issue('c-plain')
    const refusedRevocation = await durable.issue('c-durable')
    const probe = await plain.issue('c-probe')
    const bearer = (token: { accessToken: string }): Record<string, string> => ({ authorization: `Bearer ${token.accessToken}` })
    await redis.replicated()
    // The replica is cut off before the revocations: stopped, and its link closed by the primary,
    // so nothing written from now on can reach it (not even its socket buffer). Replication lag,
    // made certain: without this the revocation might or might not get there before the kill.
    await redis.pauseReplicas({ disconnect: true })
    t.teardown(() => { redis.resumeReplicas() })
    t.equal(await plain.revoke(lost.accessToken), 200, 'without waitForReplicas: the revocation answers 200')
    const told = await timed(async () => await durable.revoke(refusedRevocation.accessToken))
    t.equal(told.value, 503, `with waitForReplicas: the same revocation answers 503 (${told.ms} ms): the client knows it is not safe`)
    t.equal(await plain.status('/tok', bearer(lost)), 401, 'before the failover the primary refuses the first token')
    t.equal(await plain.status('/tok', bearer(refusedRevocation)), 401, 'and the second')

    const killed = performance.now()
    await redis.killPrimary()
    redis.resumeReplicas()
    await redis.recovered()
    await retryUntil('the app served by the promoted replica', async () => await plain.status('/tok', bearer(probe)) === 200, DEADLINE_MS)
    t.comment(`failover with the replica cut off: serving again ${Math.round(performance.now() - killed)} ms after the kill`)
    t.equal(await plain.status('/tok', bearer(lost)), 200, 'LOST: the token whose revocation answered 200 (no waitForReplicas) is accepted again after the failover')
    t.equal(await plain.status('/tok', bearer(refusedRevocation)), 200, 'the token whose revocation answered 503 is accepted too: as its client was told')
    t.equal(await durable.revoke(refusedRevocation.accessToken), 503, 'its client retries: 503 while the new primary has no replica')
    await redis.up()
    const tries = await retryUntil('the retried revocation acknowledged', async () => await durable.revoke(refusedRevocation.accessToken) === 200, DEADLINE_MS)
    t.comment(`retried revocation acknowledged after ${tries} tries, once the old primary was back as a replica`)
    t.equal(await durable.status('/tok', bearer(refusedRevocation)), 401, 'with waitForReplicas, the revocation holds once it answered 200')
  })
}, { only: ['sentinel', 'cluster'], replicas: true })

eachTopology(t, 'waitForReplicas without replicas', async (t, redis) => {
  // Documented: waitForReplicas needs replicas. Without any, every durable write is refused —
  // asserted here so that nobody believes it silently passes.
  const app = await instance(t, redis, { waitForReplicas: WAIT })
  const plain = await instance(t, redis) // same Redis, no waitForReplicas: to log in
  const token = await app.issue('n-user')
  const other = await app.issue('n-other')
  t.equal(await app.status('/tok', { authorization: `Bearer ${token.accessToken}` }), 200, 'reads work')
  // A first login destroys nothing and is answered; a re-login over a stored session regenerates
  // the id, which destroys the pre-login id durably: refused like a logout.
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { id: 'n-first' } })).statusCode, 200, 'a first login (no session cookie) answers 200')
  const session = await plain.login('n-session')
  const earlier = await plain.login('n-earlier')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { id: 'n-earlier' }, headers: { cookie: earlier } })).statusCode, 503, 'a re-login over a stored session answers 503')
  const revoke = await timed(async () => await app.revoke(token.accessToken))
  t.equal(revoke.value, 503, `an access-token revocation answers 503 (${revoke.ms} ms)`)
  t.ok(revoke.ms < HANG_MS, 'and answers')
  t.equal(await app.revokeAll(other.accessToken), 503, '"log out everywhere" answers 503')
  t.equal(await app.revokeRefresh(other.refreshToken as string), 503, 'a refresh-token revocation answers 503')
  t.equal(await app.logout(session), 503, 'a session logout answers 503')
  t.equal(await app.status('/tok', { authorization: `Bearer ${token.accessToken}` }), 401, 'the write itself was made: the token is refused (the 503 says it is not replicated)')
}, { only: ['standalone', 'cluster'] })
