import multiauth from '../.build/index.js'
import { API_KEY, API_KEYS_BY_HASH, sha256 } from './fixtures.mjs'
import { serve } from './common.mjs'

await serve(async (app) => {
  await app.register(multiauth, {
    // The record lookup an application does: hash the presented key, find the record.
    apiKey: { verify: (key) => API_KEYS_BY_HASH.get(sha256(key)) }
  })
  return { onRequest: app.authGuard(['apiKey']), headers: { 'x-api-key': API_KEY } }
})
