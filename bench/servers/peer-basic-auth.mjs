import basicAuth from '@fastify/basic-auth'
import { constantTimeEqual } from '../.build/index.js'
import { basicAuthorization, PASSWORD, USERNAME } from './fixtures.mjs'
import { serve } from './common.mjs'

await serve(async (app) => {
  await app.register(basicAuth, {
    // Same check as ours-basic-ct; @fastify/basic-auth rejects when validate returns an Error.
    validate (username, password, request, reply, done) {
      done(username === USERNAME && constantTimeEqual(password, PASSWORD) ? undefined : new Error('invalid credentials'))
    }
  })
  return { onRequest: app.basicAuth, headers: { authorization: basicAuthorization() } }
})
