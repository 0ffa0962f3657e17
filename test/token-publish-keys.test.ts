import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import Fastify from 'fastify'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import swagger from '@fastify/swagger'
import { Validator } from '@seriousme/openapi-schema-validator'
import { createLocalJWKSet, jwtVerify } from 'jose'
import type { JSONWebKeySet } from 'jose'
import multiauth, { multiauthOpenApi, MultiauthOptionError } from '../src/index.js'
import type { TokenOptions } from '../src/index.js'
import { SECRET } from './helpers/tokens.js'

// `token.publishKeys`: the public halves of the token method's asymmetric keys at
// /.well-known/jwks.json (RFC 7517), and the optional minimal discovery document. Each published
// set is checked the way a verifier uses it: jose's local key set verifies a token the app issued.

type Pair = { publicKey: KeyObject, privateKey: KeyObject }
const rsa = (): Pair => generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = (namedCurve: string): Pair => generateKeyPairSync('ec', { namedCurve })
const ed25519 = (): Pair => generateKeyPairSync('ed25519')
/** Members of a private JWK (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2): none may be published. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

async function app (token: Partial<TokenOptions>, before?: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify()
  before?.(app)
  await app.register(multiauth, { token: { findUser: (claims) => ({ id: claims.sub }), ...token } as TokenOptions })
  return app
}

async function jwks (app: FastifyInstance, path = '/.well-known/jwks.json'): Promise<JSONWebKeySet> {
  const res = await app.inject({ method: 'GET', url: path })
  if (res.statusCode !== 200) throw new Error(`GET ${path}: ${res.statusCode} ${res.body}`)
  return res.json()
}

for (const [name, pair, kty, alg, crv] of [
  ['RSA 2048', rsa(), 'RSA', 'RS256', undefined],
  ['EC P-256', ec('prime256v1'), 'EC', 'ES256', 'P-256'],
  ['EC P-384', ec('secp384r1'), 'EC', 'ES384', 'P-384'],
  ['Ed25519', ed25519(), 'OKP', 'EdDSA', 'Ed25519']
] as const) {
  t.test(`${name}: the public JWK with kid, alg and use; headers; a token the app issued verifies against it`, async (t) => {
    const a = await app({ keys: [{ kid: 'k1', ...pair }], publishKeys: true })
    t.teardown(() => a.close())
    const res = await a.inject({ method: 'GET', url: '/.well-known/jwks.json' })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], 'application/jwk-set+json')
    t.equal(res.headers['cache-control'], 'public, max-age=300')
    const set = res.json() as JSONWebKeySet
    t.equal(set.keys.length, 1)
    const jwk = set.keys[0] as Record<string, unknown>
    t.match(jwk, { kty, kid: 'k1', alg, use: 'sig' })
    if (crv !== undefined) t.equal(jwk.crv, crv)
    t.same(PRIVATE_MEMBERS.filter((m) => m in jwk), [], 'no private member')
    const { accessToken } = await a.authTokens.issue({ id: 'ann' })
    const { payload, protectedHeader } = await jwtVerify(accessToken, createLocalJWKSet(set), { algorithms: [alg], typ: 'at+jwt' })
    t.equal(payload.sub, 'ann')
    t.equal(protectedHeader.kid, 'k1')
    const head = await a.inject({ method: 'HEAD', url: '/.well-known/jwks.json' })
    t.equal(head.statusCode, 200, 'HEAD answers too (Fastify\'s exposed HEAD route)')
  })
}

t.test('rotation: every key of token.keys is published, the signing one first; tokens of either key verify', async (t) => {
  const oldPair = rsa()
  const newPair = ed25519()
  const before = await app({ keys: [{ kid: 'old', ...oldPair }], publishKeys: true })
  t.teardown(() => before.close())
  const oldToken = (await before.authTokens.issue({ id: 'ann' })).accessToken
  // After the rotation the old key only verifies (no private half): it is still published.
  const after = await app({ keys: [{ kid: 'new', ...newPair }, { kid: 'old', publicKey: oldPair.publicKey }], publishKeys: true })
  t.teardown(() => after.close())
  const set = await jwks(after)
  t.same(set.keys.map((k) => [k.kid, k.alg]), [['new', 'EdDSA'], ['old', 'RS256']])
  const newToken = (await after.authTokens.issue({ id: 'bob' })).accessToken
  const keySet = createLocalJWKSet(set)
  t.equal((await jwtVerify(oldToken, keySet)).payload.sub, 'ann', 'a token of the old key')
  t.equal((await jwtVerify(newToken, keySet)).payload.sub, 'bob', 'a token of the new key')
})

t.test('a custom path; nothing is served without publishKeys', async (t) => {
  const custom = await app({ keys: [{ kid: 'k', ...rsa() }], publishKeys: { path: '/keys' } })
  t.teardown(() => custom.close())
  t.equal((await jwks(custom, '/keys')).keys.length, 1)
  t.equal((await custom.inject('/.well-known/jwks.json')).statusCode, 404)
  t.equal((await custom.inject('/.well-known/openid-configuration')).statusCode, 404, 'no discovery unless asked')
  const off = await app({ keys: [{ kid: 'k', ...rsa() }] })
  t.teardown(() => off.close())
  t.equal((await off.inject('/.well-known/jwks.json')).statusCode, 404)
})

t.test('discovery: a minimal document naming the issuer and the key set', async (t) => {
  const a = await app({ keys: [{ kid: 'k', ...ec('prime256v1') }], issuer: 'https://auth.example.com', publishKeys: { discovery: true } })
  t.teardown(() => a.close())
  const res = await a.inject('/.well-known/openid-configuration')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.equal(res.headers['cache-control'], 'public, max-age=300')
  t.same(res.json(), { issuer: 'https://auth.example.com', jwks_uri: 'https://auth.example.com/.well-known/jwks.json' })

  // A path in the issuer is kept (discovery URLs are the issuer plus a path); a trailing slash is not doubled.
  const b = await app({ keys: [{ kid: 'k', ...ed25519() }], issuer: 'https://example.com/auth/', publishKeys: { path: '/keys.json', discovery: true } })
  t.teardown(() => b.close())
  t.same((await b.inject('/.well-known/openid-configuration')).json(), { issuer: 'https://example.com/auth/', jwks_uri: 'https://example.com/auth/keys.json' })
  t.equal((await jwks(b, '/keys.json')).keys.length, 1)
  // Loopback http is allowed (local development and the tests).
  const local = await app({ keys: [{ kid: 'k', ...ed25519() }], issuer: 'http://127.0.0.1:8080', publishKeys: { discovery: true } })
  t.teardown(() => local.close())
  t.same((await local.inject('/.well-known/openid-configuration')).json().jwks_uri, 'http://127.0.0.1:8080/.well-known/jwks.json')
})

t.test('refused at registration, naming the option', async (t) => {
  const pair = rsa()
  const refused = async (token: Partial<TokenOptions>, message: RegExp, what: string): Promise<void> => {
    const err = await app(token).then((a) => { void a.close(); return undefined }, (e: unknown) => e)
    t.ok(err instanceof MultiauthOptionError, `${what}: MultiauthOptionError`)
    t.match((err as Error | undefined)?.message, message, what)
  }
  await refused({ secret: SECRET, publishKeys: true }, /token\.publishKeys: token is an HS256 secret, which is never published/, 'an HS256 secret')
  await refused({ keys: [{ kid: 'a', ...pair }, { kid: 'b', secret: SECRET }], publishKeys: true }, /token\.publishKeys: token\.keys\[1\] is an HS256 secret/, 'an HS256 key beside an RSA one')
  await refused({ ...pair, publishKeys: true }, /token\.publishKeys: token needs a kid/, 'the shorthand pair, which has no kid')
  await refused({ issuers: [{ issuer: 'https://idp.example.com', audience: 'api' }], publishKeys: true }, /token\.publishKeys needs an asymmetric key \(RSA, EC or Ed25519\) in token\.keys/, 'no key of its own (only token.issuers)')
  await refused({ keys: [{ kid: 'a', ...pair }], publishKeys: 'yes' as never }, /token\.publishKeys must be an object/, 'a string')
  await refused({ keys: [{ kid: 'a', ...pair }], publishKeys: { paht: '/x' } as never }, /token\.publishKeys.*paht/, 'an unknown key')
  await refused({ keys: [{ kid: 'a', ...pair }], publishKeys: { path: 'jwks.json' } }, /token\.publishKeys\.path must start with "\/"/, 'a relative path')
  await refused({ keys: [{ kid: 'a', ...pair }], publishKeys: { path: '/jwks?x=1' } }, /token\.publishKeys\.path must start with "\/" and hold no query/, 'a query in the path')
  await refused({ keys: [{ kid: 'a', ...pair }], publishKeys: { discovery: 'true' as never } }, /token\.publishKeys\.discovery/, 'discovery not a boolean')
  await refused({ keys: [{ kid: 'a', ...pair }], publishKeys: { discovery: true } }, /token\.publishKeys\.discovery needs token\.issuer/, 'discovery without an issuer')
  await refused({ keys: [{ kid: 'a', ...pair }], issuer: 'my-service', publishKeys: { discovery: true } }, /token\.issuer must be an absolute URL/, 'a non-URL issuer')
  await refused({ keys: [{ kid: 'a', ...pair }], issuer: 'http://auth.example.com', publishKeys: { discovery: true } }, /token\.issuer must be an https URL/, 'plain http off loopback')
  await refused({ keys: [{ kid: 'a', ...pair }], issuer: 'https://auth.example.com?x=1', publishKeys: { discovery: true } }, /without query/, 'an issuer with a query')
  await refused({ keys: [{ kid: 'a', ...pair }], issuer: 'https://a.example', publishKeys: { path: '/.well-known/openid-configuration', discovery: true } }, /cannot be \/\.well-known\/openid-configuration/, 'the key set on the discovery path')
})

t.test('not guarded: the key set needs no credential where the application guards its routes', async (t) => {
  const a = await app({ keys: [{ kid: 'k', ...rsa() }], publishKeys: true })
  t.teardown(() => a.close())
  a.get('/private', { onRequest: a.authGuard(['token']) }, async () => 'private')
  t.equal((await a.inject('/private')).statusCode, 401, 'the guard works')
  t.equal((await a.inject('/.well-known/jwks.json')).statusCode, 200, 'the key set needs no credential')
})

/** The application's own error body: proves its handler shaped the response. */
function appHandler (err: FastifyError, _request: FastifyRequest, reply: FastifyReply): unknown {
  return reply.code(err.statusCode ?? 500).send({ app: 'shaped', code: err.code ?? 'none' })
}

t.test('errors on these routes reach the application\'s error handler, set before or after register', async (t) => {
  for (const order of ['before', 'after', 'none'] as const) {
    await t.test(`setErrorHandler ${order} register`, async (t) => {
      const a = await app({ keys: [{ kid: 'k', ...rsa() }], issuer: 'https://a.example', publishKeys: { discovery: true } }, (a) => {
        if (order === 'before') a.setErrorHandler(appHandler)
        // An application-wide hook that refuses some requests (an IP deny list, maintenance mode…).
        a.addHook('onRequest', async (request) => {
          if (request.headers['x-deny'] !== undefined) throw Object.assign(new Error('denied'), { statusCode: 403, code: 'APP_DENIED' })
        })
      })
      if (order === 'after') a.setErrorHandler(appHandler)
      t.teardown(() => a.close())
      for (const url of ['/.well-known/jwks.json', '/.well-known/openid-configuration']) {
        const res = await a.inject({ url, headers: { 'x-deny': '1' } })
        t.equal(res.statusCode, 403, `${url}: status`)
        if (order === 'none') t.match(res.json(), { statusCode: 403, code: 'APP_DENIED', message: 'denied' }, `${url}: Fastify's default body`)
        else t.same(res.json(), { app: 'shaped', code: 'APP_DENIED' }, `${url}: the application's body`)
        t.equal((await a.inject(url)).statusCode, 200, `${url}: served otherwise`)
      }
    })
  }
})

t.test('OpenAPI: the published routes carry no security requirement, even under a document-wide one', async (t) => {
  const a = Fastify()
  await a.register(swagger, multiauthOpenApi(a, { openapi: { info: { title: 't', version: '1' }, security: [{ token: [] }] } }))
  await a.register(multiauth, { token: { keys: [{ kid: 'k', ...rsa() }], issuer: 'https://a.example', publishKeys: { discovery: true }, findUser: (c) => ({ id: c.sub }) } })
  a.get('/private', { onRequest: a.authGuard(['token']) }, async () => 'private')
  await a.ready()
  t.teardown(() => a.close())
  const doc = a.swagger() as Record<string, any>
  const validation = await new Validator().validate(doc)
  t.ok(validation.valid, 'the document validates as OpenAPI')
  if (!validation.valid) t.comment(JSON.stringify(validation.errors, null, 2))
  t.match(doc.paths['/.well-known/jwks.json'].get.responses[200].content['application/jwk-set+json'].schema, { required: ['keys'] }, 'the key set\'s shape is documented')
  t.same(doc.paths['/.well-known/jwks.json'].get.security, [])
  t.same(doc.paths['/.well-known/openid-configuration'].get.security, [])
  t.same(doc.paths['/private'].get.security, [{ token: [] }], 'a guarded route keeps its requirement')
})
