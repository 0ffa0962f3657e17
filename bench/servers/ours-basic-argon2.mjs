import multiauth, { hashPassword } from '../.build/index.js'
import { basicAuthorization, PASSWORD, USER, USERNAME } from './fixtures.mjs'
import { serve } from './common.mjs'

// findCredential + argon2id on every request (the cost the cache removes). `--cache` turns the cache on.
const cached = process.argv.includes('--cache')
const users = new Map([[USERNAME, { user: USER, passwordHash: await hashPassword(PASSWORD) }]])

await serve(async (app) => {
  await app.register(multiauth, {
    basic: { findCredential: (username) => users.get(username), ...(cached ? { cache: { max: 1000, ttl: 60_000 } } : {}) }
  })
  return { onRequest: app.authGuard(['basic']), headers: { authorization: basicAuthorization() } }
})
