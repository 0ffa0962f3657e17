import multiauth, { login, RedisStore } from '../.build/index.js'
import { JWT_SECRET, USER, USERS_BY_ID } from './fixtures.mjs'
import { serve } from './common.mjs'

// As ours-session-memory, with the sessions in Redis (the harness starts a redis-server):
// one GET and one SET (the rolling expiry) per request.
const url = process.env.BENCH_REDIS_URL
if (url === undefined) throw new Error('ours-session-redis needs BENCH_REDIS_URL (bench/run.mjs starts a redis-server)')
const store = new RedisStore({ connection: url })
await serve(async (app) => {
  await app.register(multiauth, {
    store,
    session: { secret: JWT_SECRET, secure: false, lookup: (id) => USERS_BY_ID.get(id) }
  })
  app.addHook('onClose', async () => { await store.close?.() })
  app.post('/login', async (request) => { await login(request, USER); return { ok: true } })
  return {
    onRequest: app.authGuard(['session']),
    headers: async () => {
      const res = await app.inject({ method: 'POST', url: '/login' })
      return { cookie: String(res.headers['set-cookie']).split(';')[0] }
    }
  }
})
