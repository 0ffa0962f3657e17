import jwt from '@fastify/jwt'
import { JWT_SECRET, USER } from './fixtures.mjs'
import { serve } from './common.mjs'

await serve(async (app) => {
  await app.register(jwt, { secret: JWT_SECRET, sign: { algorithm: 'HS256', expiresIn: '1h' }, verify: { algorithms: ['HS256'] } })
  const token = app.jwt.sign({ sub: USER.id })
  return {
    onRequest: async (request) => { await request.jwtVerify() },
    headers: { authorization: `Bearer ${token}` }
  }
})
