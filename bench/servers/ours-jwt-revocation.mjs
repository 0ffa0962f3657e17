import multiauth, { RedisStore } from '../.build/index.js'
import { JWT_SECRET, USER, USERS_BY_ID } from './fixtures.mjs'
import { redisConnection } from './redis-options.mjs'
import { serve } from './common.mjs'

// The token option with an HS256 secret and `revocation: true`, its store in Redis (the harness
// starts a redis-server): per request, the signature and claims as in ours-jwt-hs256, then one
// MGET of two keys (this token's jti in the revoked set, the user's "log out everywhere" second),
// then `findUser` from memory. No write. `--no-autopipelining`: the store's client is built with
// ioredis auto-pipelining off (the store turns it on by default), to show what it is worth.
const url = process.env.BENCH_REDIS_URL
if (url === undefined) throw new Error('ours-jwt-revocation needs BENCH_REDIS_URL (bench/run.mjs starts a redis-server)')
const store = new RedisStore({ connection: redisConnection(url, process.argv) })

await serve(async (app) => {
  await app.register(multiauth, {
    store,
    token: { secret: JWT_SECRET, revocation: true, findUser: (claims) => USERS_BY_ID.get(claims.sub), cache: false }
  })
  // The plugin closes the store (its Redis connection) when the app closes.
  const { accessToken } = await app.authTokens.issue(USER)
  return { onRequest: app.authGuard(['token']), headers: { authorization: `Bearer ${accessToken}` } }
})
