import multiauth, { constantTimeEqual } from '../.build/index.js'
import { API_KEY, API_KEYS_BY_HASH, PASSWORD, USER, USERNAME, sha256 } from './fixtures.mjs'
import { serve } from './common.mjs'

// Any-of guard; only the last method's credentials are present, so every earlier one is tried first.
// TODO(lead): once token is merged, make it three methods: ['basic', 'token', 'apiKey'].
await serve(async (app) => {
  await app.register(multiauth, {
    basic: { verify: (username, password) => username === USERNAME && constantTimeEqual(password, PASSWORD) ? USER : null },
    apiKey: { verify: (key) => API_KEYS_BY_HASH.get(sha256(key)) }
  })
  return { onRequest: app.authGuard(['basic', 'apiKey']), headers: { 'x-api-key': API_KEY } }
})
