import auth from '@fastify/auth'
import basicAuth from '@fastify/basic-auth'
import bearerAuth from '@fastify/bearer-auth'
import { constantTimeEqual } from '../.build/index.js'
import { API_KEY, PASSWORD, USERNAME } from './fixtures.mjs'
import { serve } from './common.mjs'

// @fastify/auth combining two checks, the last one matching (peer of ours-any).
await serve(async (app) => {
  await app.register(auth)
  await app.register(basicAuth, {
    validate (username, password, request, reply, done) {
      done(username === USERNAME && constantTimeEqual(password, PASSWORD) ? undefined : new Error('invalid credentials'))
    }
  })
  await app.register(bearerAuth, { keys: new Set([API_KEY]), addHook: false })
  return { onRequest: app.auth([app.basicAuth, app.verifyBearerAuth]), headers: { authorization: `Bearer ${API_KEY}` } }
})
