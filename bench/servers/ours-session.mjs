import multiauth, { RedisStore } from '../.build/index.js'
import { JWT_SECRET, USER, USERS_BY_ID } from './fixtures.mjs'
import { redisConnection } from './redis-options.mjs'
import { serve } from './common.mjs'

// The session option (it registers @fastify/cookie and @fastify/session): one login, then every
// request loads the session and looks the user up. Default: the plugin's in-process MemoryStore.
// `--redis`: sessions in Redis (the harness starts a redis-server), one GET per request (the
// stored entry is renewed once a tenth of the idle timeout has passed: no SET in a run this short).
// `--redis --no-autopipelining`: the same, the store's client built with ioredis auto-pipelining
// off (the store turns it on for the clients it creates), to show what it is worth.
const redis = process.argv.includes('--redis')
const url = process.env.BENCH_REDIS_URL
if (redis && url === undefined) throw new Error('ours-session --redis needs BENCH_REDIS_URL (bench/run.mjs starts a redis-server)')
const store = redis ? new RedisStore({ connection: redisConnection(url, process.argv) }) : undefined

await serve(async (app) => {
  await app.register(multiauth, {
    ...(store === undefined ? {} : { store }),
    session: { secret: JWT_SECRET, secure: false, findUser: (id) => USERS_BY_ID.get(id) }
  })
  // The plugin closes the store (its Redis connection) when the app closes.
  app.post('/login', async (request) => { await app.authSessions.login(request, USER); return { ok: true } })
  return {
    onRequest: app.authGuard(['session']),
    headers: async () => {
      const res = await app.inject({ method: 'POST', url: '/login' })
      return { cookie: String(res.headers['set-cookie']).split(';')[0] }
    }
  }
})
