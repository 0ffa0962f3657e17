// [RFC 8725 §2.1 algorithm confusion; issue 12, finding 4] A public key used as an HS256 secret lets
// anyone who holds the public key sign tokens for any `sub`. Before the fix only a secret that
// *started* with "-----BEGIN" was refused: a leading newline, space or BOM (what a PEM read from a
// file or an env var often has), a DER key or a JWK was accepted; the first cases below failed then.
import t from 'tap'
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import multiauth from '../../src/index.js'
import type { TokenOptions } from '../../src/index.js'
import { handMadeJwt, rsaPair } from '../helpers/tokens.js'

const findUser: TokenOptions['findUser'] = (claims) => ({ id: claims.sub })

async function register (token: Partial<TokenOptions>): Promise<void> {
  const app = Fastify()
  try {
    await app.register(multiauth, { token: { findUser, ...token } as TokenOptions })
    await app.ready()
  } finally {
    await app.close()
  }
}

t.test('key material is refused as an HS256 secret, whatever surrounds it', async (t) => {
  const { publicKey } = rsaPair()
  const ed = generateKeyPairSync('ed25519')
  const der = createPublicKey(publicKey).export({ type: 'spki', format: 'der' })
  const jwk = JSON.stringify(createPublicKey(publicKey).export({ format: 'jwk' }))
  const cases: Array<[string, string | Buffer]> = [
    ['PEM after a newline', `\n${publicKey}`],
    ['PEM after spaces', `   ${publicKey}`],
    ['PEM after a BOM', `\uFEFF${publicKey}`],
    ['PEM after CRLF, as a Buffer', Buffer.from(`\r\n${publicKey}`)],
    ['PEM in the middle of text', `secret=${publicKey}`],
    ['Ed25519 PEM', ` ${ed.publicKey.export({ type: 'spki', format: 'pem' }) as string}`],
    ['DER SPKI bytes', der],
    ['a JWK', jwk],
    ['a JWK after a BOM', `\uFEFF${jwk}`],
    ['a JWKS', JSON.stringify({ keys: [JSON.parse(jwk)] })]
  ]
  for (const [name, secret] of cases) {
    await t.rejects(register({ secret }), { code: 'FST_MULTIAUTH_INVALID_OPTION', message: /not a shared secret/ }, name)
    await t.rejects(register({ keys: [{ kid: 'a', secret }, { kid: 'b', secret: randomBytes(32) }] }), { code: 'FST_MULTIAUTH_INVALID_OPTION', message: /token\.keys\[0\]\.secret is .*not a shared secret/ }, `${name} in token.keys`)
  }
})

t.test('real secrets are still accepted', async (t) => {
  await register({ secret: randomBytes(32) })
  await register({ secret: randomBytes(32).toString('base64url') })
  await register({ secret: 'correct horse battery staple, but longer' })
  await register({ secret: JSON.stringify({ not: 'a key', but: 'json of 32 bytes or more' }) })
  t.pass('random bytes, base64url text, a passphrase and JSON without kty are secrets')
})

t.test('the attack the check prevents: a token signed with the public key text as HMAC key', async (t) => {
  // Registration now refuses this secret; this shows what it would let through otherwise:
  // the public key (public by definition) is all an attacker needs to mint a token.
  const { publicKey } = rsaPair()
  const now = Math.floor(Date.now() / 1000)
  const forged = handMadeJwt({ alg: 'HS256', typ: 'at+jwt' }, { sub: 'admin', jti: 'x', iat: now, exp: now + 60 }, `\n${publicKey}`)
  t.match(forged, /^eyJ/, 'a forged token is trivial to make')
  await t.rejects(register({ secret: `\n${publicKey}` }), { code: 'FST_MULTIAUTH_INVALID_OPTION', message: /not a shared secret/ })
})

t.test('the same class elsewhere: a public key is refused as the session cookie-signing secret', async (t) => {
  const { publicKey } = rsaPair()
  const app = Fastify()
  await t.rejects(
    async () => { await app.register(multiauth, { session: { secret: `\n${publicKey}`, findUser: (id) => ({ id }) } }) },
    { code: 'FST_MULTIAUTH_INVALID_OPTION', message: /session.secret is a PEM block/ }
  )
  await app.close()
})
