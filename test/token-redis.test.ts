import t from 'tap'
import { RedisStore } from '../src/index.js'
import { retryUntil } from './helpers/phased-load.js'
import { eachTopology } from './helpers/redis-topology.js'
import { bearer, login, tokenApp } from './helpers/tokens.js'

eachTopology(t, 'two app instances sharing real Redis', async (t, redis) => {
  const instance = async () => {
    const store = new RedisStore(redis.storeOptions())
    const app = await tokenApp({ revocation: true, refresh: true, routes: true }, { store })
    t.teardown(async () => { await app.close(); await store.close() })
    await app.ready()
    return app
  }
  const a = await instance()
  const b = await instance()

  t.test('logout on A revokes the token on B', async (t) => {
    const { token } = await login(a)
    t.equal((await b.inject({ url: '/me', headers: bearer(token) })).statusCode, 200, 'B accepts the token before logout')
    t.equal((await a.inject({ method: 'POST', url: '/tokens/revoke', headers: bearer(token) })).statusCode, 200)
    const res = await b.inject({ url: '/me', headers: bearer(token) })
    t.equal(res.statusCode, 401, 'B refuses it after logout on A')
    t.match(String(res.headers['www-authenticate']), /error="invalid_token"/)
  })

  t.test('refresh reuse detected across instances', async (t) => {
    const first = await login(a)
    const rotated = await b.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: first.refresh_token } })
    t.equal(rotated.statusCode, 200, 'B rotates a refresh token A issued')
    const replay = await a.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: first.refresh_token } })
    t.equal(replay.statusCode, 400, 'A sees the reuse (invalid_grant)')
    t.equal((await b.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: rotated.json().refresh_token } })).statusCode, 400, 'the family is revoked for B too')
  })

  t.test('Redis down: verification fails closed with 503, and recovers', async (t) => {
    const { token } = await login(a)
    await redis.down()
    const down = await b.inject({ url: '/me', headers: bearer(token) })
    t.equal(down.statusCode, 503)
    await redis.up()
    // Bounded wait for ioredis to reconnect (its backoff is at most 2 s).
    await retryUntil('a 200 after the restart', async () => (await b.inject({ url: '/me', headers: bearer(token) })).statusCode === 200, 30_000)
    t.pass('service resumes without a restart (revocations were in the stopped, non-persistent Redis)')
  })
})
