import multiauth from '../.build/index.js'
import { JWT_SECRET, USER, USERS_BY_ID } from './fixtures.mjs'
import { serve } from './common.mjs'

// ours-jwt-hs256 with the verified-token cache (token.cache, the default): a client reusing its access
// token skips the HMAC and claims checks after its first request; findUser still runs each time.
await serve(async (app) => {
  await app.register(multiauth, {
    token: { secret: JWT_SECRET, findUser: (claims) => USERS_BY_ID.get(claims.sub) } // token.cache: on by default
  })
  const { accessToken } = await app.authTokens.issue(USER)
  return { onRequest: app.authGuard(['token']), headers: { authorization: `Bearer ${accessToken}` } }
})
