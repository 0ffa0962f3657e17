import jwt from '@fastify/jwt'
import { ED25519, USER } from './fixtures.mjs'
import { serve } from './common.mjs'

// Peer of ours-jwt-eddsa: @fastify/jwt alone with the same Ed25519 pair, algorithm pinned.
await serve(async (app) => {
  await app.register(jwt, {
    secret: { public: ED25519.publicKey, private: ED25519.privateKey },
    sign: { algorithm: 'EdDSA', expiresIn: '1h' },
    verify: { algorithms: ['EdDSA'] }
  })
  const token = app.jwt.sign({ sub: USER.id })
  return {
    onRequest: async (request) => { await request.jwtVerify() },
    headers: { authorization: `Bearer ${token}` }
  }
})
