import cookie from '@fastify/cookie'
import session from '@fastify/session'
import { Redis } from 'ioredis'
import { JWT_SECRET, USER, USERS_BY_ID } from './fixtures.mjs'
import { serve } from './common.mjs'

// Peer of ours-session-redis: @fastify/session alone, with the smallest Redis store one would
// write for it over ioredis (the shape of connect-redis): get → GET + JSON.parse, set → SET with
// PX until the cookie expires, destroy → DEL. A session is opened once; every request then loads
// it and looks its user up by id, as ours does.
//
// The same work as ours, configured the way @fastify/session is normally used: rolling (its
// default) renews the cookie's Expires on every response, and @fastify/session renews it by saving
// the session, so each request costs 1 GET + 1 SET. Ours renews the cookie on every response too
// but writes nothing to Redis for an unchanged session whose entry is younger than a tenth of
// maxAge: 1 GET per request. That difference is the point of the comparison, not a handicap.
// The client is ioredis with its defaults (no auto-pipelining, which ours turns on for the clients
// it creates: see ours-session-redis-no-autopipelining for what that is worth).
const url = process.env.BENCH_REDIS_URL
if (url === undefined) throw new Error('peer-session-redis needs BENCH_REDIS_URL (bench/run.mjs starts a redis-server)')
const redis = new Redis(url)
const PREFIX = 'sess:'
// No cookie expiry (a session cookie) would otherwise keep the entry forever: the same idle timeout.
const MAX_AGE = 2 * 60 * 60 * 1000

const store = {
  get (id, callback) {
    redis.get(PREFIX + id).then((json) => {
      let value = null
      if (json !== null) {
        try {
          value = JSON.parse(json)
        } catch (err) {
          return callback(err)
        }
      }
      callback(null, value)
    }, callback)
  },
  set (id, sess, callback) {
    const expires = sess.cookie?.expires
    const ttl = expires instanceof Date ? expires.getTime() - Date.now() : MAX_AGE
    redis.set(PREFIX + id, JSON.stringify(sess), 'PX', Math.max(1, ttl)).then(() => callback(), callback)
  },
  destroy (id, callback) {
    redis.del(PREFIX + id).then(() => callback(), callback)
  }
}

await serve(async (app) => {
  app.addHook('onClose', async () => { await redis.quit() })
  await app.register(cookie)
  // The same cookie and secret as peer-session (and ours): a 2-hour idle timeout renewed on every response.
  await app.register(session, {
    secret: JWT_SECRET,
    store,
    cookie: { secure: false, httpOnly: true, sameSite: 'lax', path: '/', maxAge: MAX_AGE },
    rolling: true,
    saveUninitialized: false
  })
  // Where the handler would read the user (decorated, so assigning it keeps the request's shape).
  app.decorateRequest('user', null)
  app.post('/login', async (request) => { request.session.set('user', USER.id); return { ok: true } })
  return {
    onRequest: async (request, reply) => {
      const id = request.session.get('user')
      const user = id === undefined ? undefined : USERS_BY_ID.get(id)
      if (user === undefined) return reply.code(401).send({ error: 'unauthorized' })
      request.user = user
    },
    headers: async () => {
      const login = await app.inject({ method: 'POST', url: '/login' })
      return { cookie: String(login.headers['set-cookie']).split(';')[0] }
    }
  }
})
