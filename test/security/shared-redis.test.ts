// [Issue 18, finding 4] Two applications sharing one Redis with the default prefix accepted each
// other's refresh tokens: X's refresh token at Y's /tokens/refresh minted an access token for Y's
// user with the same `sub` (ids like "1" are common). This test failed before the fix. Refresh
// records now carry the fingerprint of the key that issued them, and only a configuration holding
// that key redeems them (without touching the other application's family).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { RedisStore } from '../../src/index.js'
import type { TokenKey } from '../../src/index.js'
import { basicHeader } from '../helpers/app.js'
import { eachTopology } from '../helpers/redis-topology.js'

eachTopology(t, 'two applications on one Redis, default prefix: neither redeems the other\'s refresh tokens', async (t, redis) => {
  async function app (keys: TokenKey[]): Promise<FastifyInstance> {
    const store = new RedisStore(redis.storeOptions()) // prefix "multiauth:" for both
    const instance = Fastify()
    await instance.register(multiauth, {
      store,
      basic: { verify: (u, p) => u === '1' && p === 'pw' ? { id: '1' } : null },
      token: { keys, routes: true, refresh: true, findUser: (claims) => ({ id: claims.sub }) }
    })
    await instance.ready()
    t.teardown(async () => { await instance.close(); await store.close() })
    return instance
  }
  const k1 = { kid: 'k1', secret: randomBytes(32) }
  const k2 = { kid: 'k2', secret: randomBytes(32) }
  const x = await app([{ kid: 'x', secret: randomBytes(32) }])
  const y = await app([k1])
  const login = async (instance: FastifyInstance) => (await instance.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader('1', 'pw') } })).json()
  const refresh = async (instance: FastifyInstance, token: string) => await instance.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: token } })

  const fromX = await login(x)
  const atY = await refresh(y, fromX.refresh_token)
  t.equal(atY.statusCode, 400, 'Y refuses X\'s refresh token')
  t.equal(atY.json().error, 'invalid_grant')
  t.equal((await refresh(x, fromX.refresh_token)).statusCode, 200, 'X\'s family is untouched: X still refreshes it')

  // Key rotation inside one application: a refresh token stays redeemable while its key is configured.
  const fromY = await login(y)
  const rotated = await app([k2, k1])
  const ok = await refresh(rotated, fromY.refresh_token)
  t.equal(ok.statusCode, 200, 'after rotation (the old key still listed) the refresh works, now bound to the new key')
  const retired = await app([k2])
  t.equal((await refresh(retired, ok.json().refresh_token)).statusCode, 200, 'the rotated token is bound to k2')
  const stale = await login(y)
  t.equal((await refresh(retired, stale.refresh_token)).json().error, 'invalid_grant', 'a family still bound to a removed key is refused')
})
