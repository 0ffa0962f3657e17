import multiauth from '../.build/index.js'
import { ED25519, USER, USERS_BY_ID } from './fixtures.mjs'
import { serve } from './common.mjs'

// The token option with an Ed25519 key pair: the algorithm (EdDSA) follows the key type. The
// verified-token cache (on by default) is off, so every request verifies the signature as the
// peer does; `--cache` leaves it on (ours-jwt-eddsa-cache).
await serve(async (app) => {
  await app.register(multiauth, {
    token: { publicKey: ED25519.publicKey, privateKey: ED25519.privateKey, findUser: (claims) => USERS_BY_ID.get(claims.sub), ...(process.argv.includes('--cache') ? {} : { cache: false }) }
  })
  const { accessToken } = await app.authTokens.issue(USER)
  return { onRequest: app.authGuard(['token']), headers: { authorization: `Bearer ${accessToken}` } }
})
