import bearerAuth from '@fastify/bearer-auth'
import { API_KEY, API_KEYS_BY_HASH, sha256 } from './fixtures.mjs'
import { serve } from './common.mjs'

await serve(async (app) => {
  // The same check as ours-api-key: hash the presented key, find its record. @fastify/bearer-auth's
  // `auth` option replaces its own comparison (peer-bearer-auth keeps the keys in clear instead).
  await app.register(bearerAuth, { keys: new Set(), auth: (key) => API_KEYS_BY_HASH.has(sha256(key)), addHook: false })
  return { onRequest: app.verifyBearerAuth, headers: { authorization: `Bearer ${API_KEY}` } }
})
