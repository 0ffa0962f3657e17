import multiauth, { login } from '../.build/index.js'
import { JWT_SECRET, USER, USERS_BY_ID } from './fixtures.mjs'
import { serve } from './common.mjs'

// The session option (it registers @fastify/cookie and @fastify/session) with the plugin's
// default MemoryStore; one login, then every request loads the session and looks the user up.
await serve(async (app) => {
  await app.register(multiauth, {
    session: { secret: JWT_SECRET, secure: false, lookup: (id) => USERS_BY_ID.get(id) }
  })
  app.post('/login', async (request) => { await login(request, USER); return { ok: true } })
  return {
    onRequest: app.authGuard(['session']),
    headers: async () => {
      const res = await app.inject({ method: 'POST', url: '/login' })
      return { cookie: String(res.headers['set-cookie']).split(';')[0] }
    }
  }
})
