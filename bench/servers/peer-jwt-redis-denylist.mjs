import { randomUUID } from 'node:crypto'
import jwt from '@fastify/jwt'
import { Redis } from 'ioredis'
import { JWT_SECRET, USER, USERS_BY_ID } from './fixtures.mjs'
import { serve } from './common.mjs'

// Peer of ours-jwt-revocation-redis: @fastify/jwt HS256 (jwtVerify in onRequest) with its
// `trusted` callback doing the revocation check ours does, in one Redis round trip: an MGET of
// this token's jti in a denylist and the user's not-before second ("log out everywhere"); a
// token is trusted when its jti is not listed and it was issued at or after that second. Then
// the user is looked up by `sub` from memory, as ours' findUser does. Both keys of a user share
// a hash tag, as ours do, so the MGET would also run on a Cluster. The client is ioredis with its
// defaults (no auto-pipelining, which ours turns on for the clients it creates).
const url = process.env.BENCH_REDIS_URL
if (url === undefined) throw new Error('peer-jwt-redis-denylist needs BENCH_REDIS_URL (bench/run.mjs starts a redis-server)')
const redis = new Redis(url)

async function trusted (request, claims) {
  const [revoked, notBefore] = await redis.mget(`deny:{${claims.sub}}:${claims.jti}`, `deny:{${claims.sub}}:nb`)
  return revoked === null && (notBefore === null || claims.iat >= Number(notBefore))
}

await serve(async (app) => {
  app.addHook('onClose', async () => { await redis.quit() })
  await app.register(jwt, { secret: JWT_SECRET, sign: { algorithm: 'HS256', expiresIn: '1h' }, verify: { algorithms: ['HS256'] }, trusted })
  // A jti per token, as ours issues: what the denylist is keyed by.
  const token = app.jwt.sign({ sub: USER.id, jti: randomUUID() })
  return {
    onRequest: async (request, reply) => {
      const claims = await request.jwtVerify()
      if (USERS_BY_ID.get(claims.sub) === undefined) return reply.code(401).send({ error: 'unauthorized' })
    },
    headers: { authorization: `Bearer ${token}` }
  }
})
