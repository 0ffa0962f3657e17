import cookie from '@fastify/cookie'
import session from '@fastify/session'
import { JWT_SECRET, USER } from './fixtures.mjs'
import { serve } from './common.mjs'

// @fastify/session alone (its own memory store): a session is opened once, then every
// request loads it and checks it holds a user.
await serve(async (app) => {
  await app.register(cookie)
  // The same cookie as ours: a 2-hour idle timeout renewed on every response (rolling, the
  // default), so both write Expires and save the session each time.
  await app.register(session, {
    secret: JWT_SECRET,
    cookie: { secure: false, httpOnly: true, sameSite: 'lax', path: '/', maxAge: 2 * 60 * 60 * 1000 },
    saveUninitialized: false
  })
  app.post('/login', async (request) => { request.session.set('user', USER); return { ok: true } })
  return {
    onRequest: async (request, reply) => {
      if (request.session.get('user') === undefined) return reply.code(401).send({ error: 'unauthorized' })
    },
    headers: async () => {
      const login = await app.inject({ method: 'POST', url: '/login' })
      return { cookie: String(login.headers['set-cookie']).split(';')[0] }
    }
  }
})
