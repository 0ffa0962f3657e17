import multiauth from '../.build/index.js'
import { JWT_SECRET, USER, USERS_BY_ID } from './fixtures.mjs'
import { serve } from './common.mjs'

// The token option with an HS256 secret, its verified-token cache off (on by default;
// ours-jwt-hs256-cache measures it): signature, alg pin, typ and registered claims are checked
// on every request by @fastify/jwt (fast-jwt); `findUser` maps the claims to the user from memory.
await serve(async (app) => {
  await app.register(multiauth, {
    token: { secret: JWT_SECRET, findUser: (claims) => USERS_BY_ID.get(claims.sub), cache: false }
  })
  const { accessToken } = await app.authTokens.issue(USER)
  return { onRequest: app.authGuard(['token']), headers: { authorization: `Bearer ${accessToken}` } }
})
