import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth from '../src/index.js'
import type { TokenKey } from '../src/index.js'
import { freePort } from './helpers/redis.js'

// Issue 14's acceptance, over real HTTP: service A signs access tokens and publishes its keys
// (`token.publishKeys` with discovery); service B trusts A as an issuer (`token.issuers: [{ issuer:
// A, audience }]`) with no key of its own, finds A's key set through A's discovery document, and
// accepts A's tokens. Then A rotates its key (restarted on the same port with keys [new, old]):
// a token of the new key passes on B after exactly one refetch of A's key set, and a token of the
// old key still passes while A publishes it. Once with RS256 keys, once with EdDSA (Ed25519).

const AUDIENCE = 'https://orders.example.test'
const OTHER_AUDIENCE = 'https://billing.example.test'
/** B's refetch cooldown (the smallest allowed): the test waits it out before the rotated key's first token. */
const COOLDOWN_MS = 1000

interface Served { jwks: number, discovery: number }

/** Service A on 127.0.0.1:`port`: signs with the first of `keys`, publishes them all; counts the requests for its key set and discovery document. */
async function serviceA (port: number, keys: TokenKey[], served: Served): Promise<FastifyInstance> {
  const app = Fastify()
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.url === '/.well-known/jwks.json') served.jwks++
    if (request.url === '/.well-known/openid-configuration') served.discovery++
    done()
  })
  await app.register(multiauth, {
    token: { keys, issuer: `http://127.0.0.1:${port}`, audience: AUDIENCE, publishKeys: { discovery: true }, findUser: (claims) => ({ id: claims.sub }) }
  })
  await app.listen({ port, host: '127.0.0.1' })
  return app
}

/** A's issuer and keys minting tokens for another API of the same issuer (never listening). */
async function otherAudienceMinter (port: number, keys: TokenKey[]): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(multiauth, {
    token: { keys, issuer: `http://127.0.0.1:${port}`, audience: OTHER_AUDIENCE, findUser: (claims) => ({ id: claims.sub }) }
  })
  await app.ready()
  return app
}

/** Service B: trusts A's tokens for its audience; `GET /orders` answers what it verified. */
async function serviceB (issuer: string): Promise<{ app: FastifyInstance, base: string }> {
  const app = Fastify()
  await app.register(multiauth, {
    token: {
      issuers: [{ issuer, audience: AUDIENCE, cooldown: COOLDOWN_MS }],
      findUser: (claims) => ({ id: claims.sub })
    }
  })
  app.get('/orders', { onRequest: app.authGuard(['token']) }, async (request) => ({
    user: request.auth?.user,
    iss: request.auth?.method === 'token' ? request.auth.claims.iss : undefined
  }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('B has no TCP address')
  return { app, base: `http://127.0.0.1:${address.port}` }
}

async function callB (base: string, token: string): Promise<{ status: number, body: any }> {
  const res = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${token}` } })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

type Pair = { publicKey: KeyObject, privateKey: KeyObject }
const KEY_TYPES: Array<[string, () => Pair]> = [
  ['RS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
  ['EdDSA', () => generateKeyPairSync('ed25519')]
]

for (const [alg, newPair] of KEY_TYPES) {
  t.test(`${alg}: B accepts A's tokens through A's published keys, refuses another audience, and follows A's key rotation`, async (t) => {
    const port = await freePort()
    const issuer = `http://127.0.0.1:${port}`
    const served: Served = { jwks: 0, discovery: 0 }
    const oldKey: TokenKey = { kid: `${alg}-old`, ...newPair() }
    const newKey: TokenKey = { kid: `${alg}-new`, ...newPair() }

    let a = await serviceA(port, [oldKey], served)
    t.teardown(() => a.close())
    const b = await serviceB(issuer)
    t.teardown(() => b.app.close())

    const before = (await a.authTokens.issue({ id: 'ann' })).accessToken
    const accepted = await callB(b.base, before)
    t.equal(accepted.status, 200, 'A\'s token passes on B')
    t.same(accepted.body, { user: { id: 'ann' }, iss: issuer })
    t.same(served, { jwks: 1, discovery: 1 }, 'B found the key set through A\'s discovery document')
    t.equal((await callB(b.base, before)).status, 200, 'again, from B\'s cache')
    t.same(served, { jwks: 1, discovery: 1 }, 'no second fetch')

    const minter = await otherAudienceMinter(port, [oldKey])
    t.teardown(() => minter.close())
    const forBilling = (await minter.authTokens.issue({ id: 'ann' })).accessToken
    t.equal((await callB(b.base, forBilling)).status, 401, 'a token A minted for another API is refused')

    // A rotates: restarted on the same port, the new key first (it signs), the old one still published.
    await a.close()
    a = await serviceA(port, [newKey, oldKey], served)
    const after = (await a.authTokens.issue({ id: 'bob' })).accessToken
    t.equal(JSON.parse(Buffer.from(after.split('.')[0] as string, 'base64url').toString()).kid, newKey.kid, 'signed by the new key')
    // B refetches a key set for an unknown kid at most once per cooldown: wait it out since the first fetch.
    await sleep(COOLDOWN_MS + 100)
    const rotated = await callB(b.base, after)
    t.equal(rotated.status, 200, 'a token of the new key passes on B')
    t.same(rotated.body, { user: { id: 'bob' }, iss: issuer })
    t.equal(served.jwks, 2, 'after exactly one refetch of A\'s key set')
    t.equal((await callB(b.base, before)).status, 200, 'a token of the old key still passes while A publishes it')
    t.equal((await callB(b.base, after)).status, 200, 'and the new one again')
    t.equal(served.jwks, 2, 'no further fetch')
    t.equal(served.discovery, 1, 'the discovery document was read once')
  })
}
