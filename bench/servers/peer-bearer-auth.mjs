import bearerAuth from '@fastify/bearer-auth'
import { API_KEY } from './fixtures.mjs'
import { serve } from './common.mjs'

await serve(async (app) => {
  // Keys in memory, compared in constant time by the plugin.
  await app.register(bearerAuth, { keys: new Set([API_KEY]), addHook: false })
  return { onRequest: app.verifyBearerAuth, headers: { authorization: `Bearer ${API_KEY}` } }
})
