import multiauth, { constantTimeEqual } from '../.build/index.js'
import { API_KEY, API_KEYS_BY_HASH, JWT_SECRET, PASSWORD, USER, USERNAME, USERS_BY_ID, sha256 } from './fixtures.mjs'
import { serve } from './common.mjs'

// Any-of guard of three methods; only the last one's credentials are present, so the two
// before it look for theirs first (and find none).
await serve(async (app) => {
  await app.register(multiauth, {
    basic: { verify: (username, password) => username === USERNAME && constantTimeEqual(password, PASSWORD) ? USER : null },
    token: { secret: JWT_SECRET, findUser: (claims) => USERS_BY_ID.get(claims.sub) },
    apiKey: { verify: (key) => API_KEYS_BY_HASH.get(sha256(key)) }
  })
  return { onRequest: app.authGuard(['basic', 'token', 'apiKey']), headers: { 'x-api-key': API_KEY } }
})
