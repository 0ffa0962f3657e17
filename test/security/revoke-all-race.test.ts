// [Issue 18, finding 2: "log out everywhere" wins every race] revokeAll sets the user's
// not-before to the next whole second. A POST /tokens whose password was checked before a
// password reset + revokeAll, or a /tokens/refresh that had passed its checks, used to sign
// afterwards with `iat` in that next second, so its access token and its refresh family survived
// (5 of 5 trials in the review). These tests failed before the fix: each holds the login (or the
// refresh) after its verification, runs revokeAll on the OTHER instance, waits past the next whole
// second (1,100 ms: a later second for certain, so the old code's `iat` was never refused), then
// lets it sign. Now `iat` is the time of the verification, so nothing that started before
// revokeAll returned survives it. Two instances share a real Redis (standalone, Cluster, Sentinel).
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { RedisStore } from '../../src/index.js'
import { basicHeader } from '../helpers/app.js'
import { eachTopology } from '../helpers/redis-topology.js'
import { SECRET } from '../helpers/tokens.js'

const PAST_THE_NEXT_SECOND_MS = 1100
const TRIALS = 3

/** Holds one call of a callback until released; says when the call arrived. */
class Gate {
  armed = false
  private arrived: () => void = () => {}
  private release: () => void = () => {}
  arrivedAt = new Promise<void>((resolve) => { this.arrived = resolve })
  private opened = new Promise<void>((resolve) => { this.release = resolve })
  async pass (): Promise<void> {
    if (!this.armed) return
    this.armed = false
    this.arrived()
    await this.opened
  }

  open (): void { this.release() }
}

eachTopology(t, 'two instances on real Redis: a login or refresh in flight during "log out everywhere" does not survive it', async (t, redis) => {
  let claimsGate = new Gate()
  let findUserGate = new Gate()
  const instances: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    const store = new RedisStore(redis.storeOptions())
    const app = Fastify()
    await app.register(multiauth, {
      store,
      basic: { verify: (u, p) => u === 'ann' && p === 'pw' ? { id: 'ann' } : null },
      token: {
        secret: SECRET,
        routes: true,
        refresh: true,
        revocation: true,
        claims: async (user) => { await claimsGate.pass(); return { sub: (user as { id: string }).id } },
        findUser: async (claims) => { await findUserGate.pass(); return { id: claims.sub } }
      }
    })
    app.get('/me', { onRequest: app.authGuard(['token']) }, async (request) => request.auth?.user ?? null)
    await app.ready()
    t.teardown(async () => { await app.close(); await store.close() })
    instances.push(app)
  }
  const [a, b] = instances as [FastifyInstance, FastifyInstance]
  const loginOn = async (app: FastifyInstance) => await app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader('ann', 'pw') } })
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

  for (let trial = 1; trial <= TRIALS; trial++) {
    // 1. A login whose password check is done, held before it signs.
    claimsGate = new Gate()
    claimsGate.armed = true
    const login = loginOn(a)
    await claimsGate.arrivedAt
    await b.authTokens.revokeAll('ann') // the password reset's "log out everywhere", on the other instance
    await sleep(PAST_THE_NEXT_SECOND_MS)
    claimsGate.open()
    const late = await login
    t.equal(late.statusCode, 200, `trial ${trial}: the held login completes`)
    const tokens = late.json()
    t.equal((await b.inject({ url: '/me', headers: bearer(tokens.token) })).statusCode, 401, `trial ${trial}: its access token is refused (B)`)
    t.equal((await a.inject({ url: '/me', headers: bearer(tokens.token) })).statusCode, 401, `trial ${trial}: and on A`)
    const refreshed = await b.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: tokens.refresh_token } })
    t.equal(refreshed.json().error, 'invalid_grant', `trial ${trial}: its refresh family is dead`)

    // 2. A refresh that passed its checks, held at findUser, before it signs.
    const fresh = (await loginOn(a)).json()
    t.equal((await a.inject({ url: '/me', headers: bearer(fresh.token) })).statusCode, 200, `trial ${trial}: a login after the reset works`)
    findUserGate = new Gate()
    findUserGate.armed = true
    const refresh = a.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: fresh.refresh_token } })
    await findUserGate.arrivedAt
    await b.authTokens.revokeAll('ann')
    await sleep(PAST_THE_NEXT_SECOND_MS)
    findUserGate.open()
    const rotated = await refresh
    t.equal(rotated.statusCode, 200, `trial ${trial}: the held refresh completes`)
    const next = rotated.json()
    t.equal((await b.inject({ url: '/me', headers: bearer(next.token) })).statusCode, 401, `trial ${trial}: the refreshed access token is refused`)
    const again = await a.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: next.refresh_token } })
    t.equal(again.json().error, 'invalid_grant', `trial ${trial}: the rotated refresh token is refused`)
    // Let the next trial's login land in a second after this revokeAll (logins in its own second are refused by design).
    await sleep(PAST_THE_NEXT_SECOND_MS)
  }
})

t.test('issue(user, { verifiedAt }): iat is the verification time, never later than now', async (t) => {
  const app = Fastify()
  await app.register(multiauth, { token: { secret: SECRET, findUser: (claims) => ({ id: claims.sub }) } })
  await app.ready()
  t.teardown(() => app.close())
  const iat = (token: string): number => JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).iat
  const past = Date.now() - 60_000
  t.equal(iat((await app.authTokens.issue({ id: 'u' }, { verifiedAt: past })).accessToken), Math.floor(past / 1000))
  t.equal(iat((await app.authTokens.issue({ id: 'u' }, { verifiedAt: new Date(past) })).accessToken), Math.floor(past / 1000))
  const now = Math.floor(Date.now() / 1000)
  const future = iat((await app.authTokens.issue({ id: 'u' }, { verifiedAt: Date.now() + 3_600_000 })).accessToken)
  t.ok(future >= now && future <= now + 1, 'a future time is clamped to now')
  await t.rejects(app.authTokens.issue({ id: 'u' }, { verifiedAt: Number.NaN }), /verifiedAt/)
})
