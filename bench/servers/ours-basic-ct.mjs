import multiauth, { constantTimeEqual } from '../.build/index.js'
import { basicAuthorization, PASSWORD, USER, USERNAME } from './fixtures.mjs'
import { serve } from './common.mjs'

await serve(async (app) => {
  await app.register(multiauth, {
    basic: { verify: (username, password) => username === USERNAME && constantTimeEqual(password, PASSWORD) ? USER : null }
  })
  return { onRequest: app.authGuard(['basic']), headers: { authorization: basicAuthorization() } }
})
