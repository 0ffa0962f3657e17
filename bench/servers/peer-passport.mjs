import cookie from '@fastify/cookie'
import passport from '@fastify/passport'
import session from '@fastify/session'
import { Strategy as BearerStrategy } from 'passport-http-bearer'
import { API_KEY, API_KEYS_BY_HASH, JWT_SECRET, sha256 } from './fixtures.mjs'
import { serve } from './common.mjs'

await serve(async (app) => {
  // Same record lookup as ours-api-key, through a passport bearer strategy.
  passport.use('bearer', new BearerStrategy((token, done) => done(null, API_KEYS_BY_HASH.get(sha256(token)) ?? false)))
  // @fastify/passport cannot be registered without a session plugin, even for { session: false }.
  await app.register(cookie)
  await app.register(session, { secret: JWT_SECRET, cookie: { secure: false }, saveUninitialized: false })
  await app.register(passport.initialize())
  return { onRequest: passport.authenticate('bearer', { session: false }), headers: { authorization: `Bearer ${API_KEY}` } }
})
