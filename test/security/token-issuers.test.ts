import t from 'tap'
import type { Test } from 'tap'
import { createServer } from 'node:http'
import type { Server, ServerResponse } from 'node:http'
import { createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import type { KeyObject } from 'node:crypto'
import { Writable } from 'node:stream'
import { SignJWT } from 'jose'
import type { JWK, JWTPayload, JWSHeaderParameters } from 'jose'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import type { TokenOptions, TrustedIssuer } from '../../src/index.js'
import { buildApp } from '../helpers/app.js'
import { freePort } from '../helpers/redis.js'
import { startResourceProvider } from '../helpers/oidc-resource-provider.js'
import { handMadeJwt, login, tokenApp } from '../helpers/tokens.js'

// Adversarial review of token.issuers (issue 14): a provider's access tokens verified with its
// published keys. Two providers: the REAL oidc-provider (test/helpers/oidc-resource-provider.ts)
// and an issuer of our own on 127.0.0.1 whose key set we shape (several keys of one type, a JWK
// pinned to an alg, an `oct` key) and which misbehaves on demand (drips its body, answers
// garbage). Every assertion here would fail if the guarantee it names broke.

const provider = await startResourceProvider()
t.teardown(async () => { await provider.close() })

const bearer = (token: string): { authorization: string } => ({ authorization: `Bearer ${token}` })
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

interface OwnKey { kid: string, alg: string, privateKey: KeyObject, publicJwk: JWK }
/** A node KeyObject (not a CryptoKey, which WebCrypto binds to one algorithm): the same key can sign RS256 and PS256. */
function ownKey (kid: string, alg: string, jwkAlg: string | undefined): OwnKey {
  const { privateKey, publicKey } = alg.startsWith('ES')
    ? generateKeyPairSync('ec', { namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg] as string })
    : alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 2048 })
  const publicJwk: JWK = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, use: 'sig', ...(jwkAlg === undefined ? {} : { alg: jwkAlg }) }
  return { kid, alg, privateKey, publicJwk }
}
/** A token with any header at all (jose's SignJWT refuses some, e.g. an unknown `crit`), RS256-signed with `key`. */
function rawRs256 (key: OwnKey, header: Record<string, unknown>, payload: JWTPayload): string {
  const input = `${Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: key.kid, ...header })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`
  return `${input}.${sign('sha256', Buffer.from(input), key.privateKey).toString('base64url')}`
}
// Two RSA keys (one pinned to RS256 by its JWK, one not), an EC P-256 key, an Ed25519 key.
const rsaA = ownKey('rsa-a', 'RS256', 'RS256')
const rsaB = ownKey('rsa-b', 'RS256', undefined)
const ec = ownKey('ec', 'ES256', undefined)
const ed = ownKey('ed', 'EdDSA', undefined)
const OCT_SECRET = randomBytes(32)

/** What our own issuer serves, per path: a body (string or JSON) or a handler; hits are counted. */
type Route = { status?: number, body: unknown } | ((res: ServerResponse) => void)
const port = await freePort()
const own = `http://127.0.0.1:${port}`
const routes = new Map<string, Route>()
const hits = new Map<string, number>()
const keySet = (...keys: OwnKey[]): { keys: JWK[] } => ({ keys: keys.map((k) => k.publicJwk) })
function serveDefaults (): void {
  routes.clear()
  routes.set('/jwks', { body: keySet(rsaA, rsaB, ec, ed) })
  routes.set('/jwks-with-oct', { body: { keys: [rsaA.publicJwk, { kty: 'oct', kid: 'oct', k: OCT_SECRET.toString('base64url') }] } })
}
serveDefaults()
const server: Server = createServer((req, res) => {
  const path = req.url ?? ''
  hits.set(path, (hits.get(path) ?? 0) + 1)
  const route = routes.get(path)
  if (typeof route === 'function') return route(res)
  res.statusCode = route?.status ?? (route === undefined ? 404 : 200)
  res.setHeader('content-type', 'application/json')
  res.end(route === undefined ? '{}' : typeof route.body === 'string' ? route.body : JSON.stringify(route.body))
})
await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
t.teardown(async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) })
const hitsOf = (path: string): number => hits.get(path) ?? 0

function claims (extra: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000)
  return { iss: own, aud: 'api', sub: 'client-1', scope: 'read', iat: now, exp: now + 300, ...extra }
}
async function signed (key: OwnKey, payload: JWTPayload = claims(), header: Partial<JWSHeaderParameters> = {}): Promise<string> {
  return await new SignJWT(payload).setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: key.kid, ...header } as JWSHeaderParameters & { alg: string }).sign(key.privateKey)
}

interface Harness { app: FastifyInstance, logs: () => string }
/** An API trusting our own issuer (keys at `/jwks` unless said) and the real provider; `GET /me` → request.auth. */
async function api (t: Test, issuer: Partial<TrustedIssuer> = {}, extra: { callbackTimeout?: number, token?: Partial<TokenOptions> } = {}): Promise<Harness> {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const app = await buildApp({
    ...(extra.callbackTimeout === undefined ? {} : { callbackTimeout: extra.callbackTimeout }),
    token: {
      findUser: (c) => ({ id: c.sub }),
      issuers: [
        { issuer: own, jwksUri: `${own}/jwks`, audience: 'api', ...issuer },
        { issuer: provider.issuer, audience: provider.audience }
      ],
      ...extra.token
    } as TokenOptions
  }, { logger: { level: 'debug', stream } })
  app.get('/me', { onRequest: app.authGuard(['token']) }, async (request) => request.auth)
  // Roles in a guard need a roles source: only when this issuer maps them.
  if (issuer.roles !== undefined) app.get('/admin', { onRequest: app.authGuard({ methods: ['token'], roles: ['admin'] }) }, async (request) => ({ roles: request.auth?.roles }))
  await app.ready()
  t.teardown(() => app.close())
  return { app, logs: () => lines.join('') }
}
async function status (app: FastifyInstance, token: string, url = '/me'): Promise<number> {
  return (await app.inject({ url, headers: bearer(token) })).statusCode
}

t.test('a kid-less token while the set holds several keys of its type: tried against each (failed before the fix: 500)', async (t) => {
  // Regression: jose answers such a token with JWKSMultipleMatchingKeys, which the verifier did not
  // map: any caller, unauthenticated, got a 500 and an error-level log line per request, and a
  // genuine kid-less token (RFC 7515 makes kid optional) never passed. Both ran as 500 before the fix.
  const { app, logs } = await api(t)
  const genuine = await signed(rsaA, claims(), { kid: undefined })
  const res = await app.inject({ url: '/me', headers: bearer(genuine) })
  t.equal(res.statusCode, 200, 'a genuine kid-less RS256 token: the right one of the two RSA keys verifies it')
  t.equal(res.json().user.id, 'client-1')
  t.equal(await status(app, await signed(rsaB, claims(), { kid: undefined, alg: 'PS256' })), 200, 'the other RSA key too (its JWK names no alg)')
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const forged = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' }).sign(privateKey)
  t.equal(await status(app, forged), 401, 'a kid-less token no published key signed: 401, not 500')
  const tampered = genuine.split('.')
  tampered[1] = Buffer.from(JSON.stringify(claims({ sub: 'admin' }))).toString('base64url')
  t.equal(await status(app, tampered.join('.')), 401, 'a kid-less genuine signature over an edited payload: 401')
  t.notMatch(logs(), /"level":50/, 'nothing logged at error level')
})

t.test('algorithm confusion: HS256 with the public key, an oct key in the set, none, an RSA JWK for ES/PS, a JWK pinned to another alg', async (t) => {
  const { app } = await api(t)
  t.equal(await status(app, await signed(rsaA)), 200, 'warm: the set is fetched')
  const fetches = hitsOf('/jwks')
  const pem = createPublicKey({ key: rsaA.publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string
  for (const [what, secret] of [['PEM', pem], ['JWK JSON', JSON.stringify(rsaA.publicJwk)], ['modulus', Buffer.from(rsaA.publicJwk.n as string, 'base64url')]] as const) {
    t.equal(await status(app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid: 'rsa-a' }, claims(), secret)), 401, `HS256 keyed with the published ${what}`)
  }
  t.equal(await status(app, handMadeJwt({ alg: 'none', typ: 'at+jwt', kid: 'rsa-a' }, claims())), 401, 'alg none')
  t.equal(await status(app, handMadeJwt({ alg: 'None', typ: 'at+jwt' }, claims())), 401, 'alg None')
  t.equal(hitsOf('/jwks'), fetches, 'refused before any key lookup: HS256 and none never cause a refetch')

  // The same RSA private key, other algorithms.
  t.equal(await status(app, await signed({ ...rsaA, alg: 'PS256' })), 401, 'PS256 with the key whose JWK says alg RS256: refused (the JWK pins its alg)')
  t.equal(await status(app, await signed({ ...rsaA, alg: 'RS512' })), 401, 'RS512 with that key: refused')
  t.equal(await status(app, await signed({ ...rsaB, alg: 'PS256' })), 200, 'PS256 with a JWK that names no alg: any RSA algorithm the issuer allows')
  const { app: pinned } = await api(t, { algorithms: ['RS256', 'ES256', 'EdDSA'] })
  t.equal(await status(pinned, await signed({ ...rsaB, alg: 'PS256' })), 401, '…unless `algorithms` leaves it out')
  t.equal(await status(app, await signed(ec, claims(), { kid: 'rsa-a' })), 401, 'ES256 naming the RSA key')
  t.equal(await status(app, await signed(ownKey('ec', 'ES384', undefined))), 401, 'ES384 (a P-384 key) naming the P-256 key')
  t.equal(await status(app, await signed(ed)), 200, 'EdDSA with the Ed25519 key')
  t.equal(await status(app, await signed(ed, claims(), { kid: 'rsa-b' })), 401, 'EdDSA naming an RSA key')

  // A provider that (wrongly) publishes a symmetric key: never an HMAC key for us.
  const { app: withOct } = await api(t, { jwksUri: `${own}/jwks-with-oct` })
  t.equal(await status(withOct, await signed(rsaA)), 200, 'warm')
  t.equal(await status(withOct, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid: 'oct' }, claims(), OCT_SECRET)), 401, 'HS256 under the oct key of the set: refused')
})

t.test('embedded-key headers (jwk, jku, x5u, x5c) are ignored: no fetch of them, the published keys decide', async (t) => {
  const { app } = await api(t)
  const attacker = ownKey('rsa-a', 'RS256', 'RS256') // the attacker reuses the genuine kid
  const headers: Array<[string, Partial<JWSHeaderParameters>]> = [
    ['jwk (the attacker’s public key, embedded)', { jwk: { kty: attacker.publicJwk.kty, n: attacker.publicJwk.n, e: attacker.publicJwk.e } }],
    ['jku (the attacker’s key set URL)', { jku: `${own}/attacker-jwks` }],
    ['x5u', { x5u: `${own}/attacker-x5u` }],
    ['x5c (a made-up chain)', { x5c: [randomBytes(64).toString('base64')] }]
  ]
  routes.set('/attacker-jwks', { body: keySet(attacker) })
  t.teardown(() => routes.delete('/attacker-jwks'))
  for (const [what, header] of headers) {
    t.equal(await status(app, await signed(attacker, claims(), header)), 401, `${what}, kid of a published key`)
    t.equal(await status(app, await signed(attacker, claims(), { ...header, kid: 'attacker' })), 401, `${what}, a kid of its own`)
  }
  t.equal(hitsOf('/attacker-jwks') + hitsOf('/attacker-x5u'), 0, 'neither jku nor x5u was ever fetched')
  t.equal(await status(app, await signed(rsaA, claims(), { jku: `${own}/attacker-jwks` })), 200, 'a genuine token with a jku header: verified with the published key (the header is just ignored)')
})

t.test('crit: an unknown critical header and b64:false are refused, even under a genuine signature', async (t) => {
  const { app } = await api(t)
  t.equal(await status(app, rawRs256(rsaA, {}, claims())), 200, 'sanity: the raw signer makes a token that passes')
  t.equal(await status(app, rawRs256(rsaA, { crit: ['x-must-understand'], 'x-must-understand': true }, claims())), 401, 'crit naming an extension we do not understand')
  t.equal(await status(app, rawRs256(rsaA, { crit: ['exp'] }, claims())), 401, 'crit naming a registered claim, absent from the header')
  t.equal(await status(app, rawRs256(rsaA, { crit: 'b64', b64: true }, claims())), 401, 'crit not an array')
  t.equal(await status(app, rawRs256(rsaA, { crit: [] }, claims())), 401, 'crit empty (RFC 7515 §4.1.11: must not be)')
  const b64 = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'rsa-a', b64: true, crit: ['b64'] }).sign(rsaA.privateKey)
  t.equal(await status(app, b64), 200, 'b64:true marked critical is understood')
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: 'rsa-a', b64: false, crit: ['b64'] })).toString('base64url')
  t.equal(await status(app, `${header}.${b64.split('.')[1] as string}.${b64.split('.')[2] as string}`), 401, 'b64:false: refused')
})

t.test('issuer selection: exact iss only; a token of one trusted issuer claiming another is refused', async (t) => {
  const { app } = await api(t)
  t.equal(await status(app, await provider.accessToken()), 200, 'warm: the provider’s keys')
  t.equal(await status(app, await signed(rsaA)), 200, 'warm: our issuer’s keys')
  const provFetches = provider.jwksRequests()
  const ownFetches = hitsOf('/jwks')
  t.equal(await status(app, await signed(rsaA, claims({ iss: provider.issuer, aud: provider.audience }))), 401, 'signed by our issuer, iss of the provider (its audience too)')
  t.equal(await status(app, await provider.sign(claims({ iss: own, aud: 'api' }))), 401, 'signed by the provider, iss of our issuer')
  t.ok(provider.jwksRequests() - provFetches <= 1 && hitsOf('/jwks') - ownFetches <= 1, 'each costs at most the one kid-miss refetch per cooldown')
  const before = hitsOf('/jwks') + provider.jwksRequests()
  for (const iss of [`${own}/`, own.toUpperCase(), own.replace('http:', 'HTTP:'), `${own}#`, ` ${own}`, own.replace('127.0.0.1', 'localhost')]) {
    t.equal(await status(app, await signed(rsaA, claims({ iss }))), 401, `iss ${JSON.stringify(iss)}: not the configured string`)
  }
  t.equal(await status(app, await signed(rsaA, claims({ iss: [own] as never }))), 401, 'iss as an array')
  t.equal(hitsOf('/jwks') + provider.jwksRequests(), before, 'an iss matching no trusted issuer exactly fetches nothing')
})

t.test('audience: any-of an aud array; an empty array, another case, another type are refused', async (t) => {
  const { app } = await api(t, { audience: ['api', 'api-2'] })
  t.equal(await status(app, await signed(rsaA, claims({ aud: ['other', 'api-2'] }))), 200, 'aud array holding one of ours (RFC 7519 §4.1.3)')
  for (const [what, aud] of [['[]', []], ['["other"]', ['other']], ['"API"', 'API'], ['"api " (space)', 'api '], ['an object', { api: true }], ['a number', 1], ['null', null]] as const) {
    t.equal(await status(app, await signed(rsaA, claims({ aud: aud as never }))), 401, `aud ${what}`)
  }
})

t.test('typ: missing, an array, a number, a prefix or a trailing space are refused; case and application/ are not significant', async (t) => {
  const { app } = await api(t)
  const cases: Array<[unknown, number]> = [
    [undefined, 401], [['at+jwt'], 401], [42, 401], ['at+jwt ', 401], ['at', 401], ['jwt', 401], ['application/jwt', 401],
    ['at+jwt', 200], ['AT+JWT', 200], ['application/at+jwt', 200], ['Application/At+Jwt', 200]
  ]
  for (const [typ, expected] of cases) {
    t.equal(await status(app, await signed(rsaA, claims(), { typ: typ as never })), expected, `typ ${JSON.stringify(typ)} → ${expected}`)
  }
})

t.test('untyped presets: an ID token or a token for another API of the same provider does not pass', async (t) => {
  const { app: okta } = await api(t, { preset: 'okta', audience: 'api://default' })
  const oktaClaims = claims({ aud: 'api://default', scope: undefined, scp: ['read'] })
  t.equal(await status(okta, await signed(rsaA, oktaClaims, { typ: undefined })), 200, 'okta access token (no typ)')
  t.equal(await status(okta, await signed(rsaA, { ...oktaClaims, aud: '0oa1clientid', nonce: 'n', amr: ['pwd'] }, { typ: undefined })), 401, 'okta ID token: aud is the client id')
  t.equal(await status(okta, await signed(rsaA, { ...oktaClaims, aud: 'api://other' }, { typ: undefined })), 401, 'okta access token for another API')
  t.equal(await status(okta, await signed(rsaA, oktaClaims, { typ: 'id_token+jwt' })), 401, 'a typ the preset does not know')

  const { app: cognito } = await api(t, { preset: 'cognito', audience: 'app-client' })
  const access = claims({ aud: undefined, client_id: 'app-client', token_use: 'access' })
  t.equal(await status(cognito, await signed(rsaA, access, { typ: undefined })), 200, 'cognito access token')
  t.equal(await status(cognito, await signed(rsaA, claims({ aud: 'app-client', token_use: 'id' }), { typ: undefined })), 401, 'cognito ID token (aud = the client, token_use id)')
  t.equal(await status(cognito, await signed(rsaA, claims({ aud: 'app-client', client_id: 'app-client', token_use: 'id' }), { typ: undefined })), 401, 'an ID token with a client_id claim too')
  t.equal(await status(cognito, await signed(rsaA, { ...access, client_id: 'other-client' }, { typ: undefined })), 401, 'an access token of another app client')
  t.equal(await status(cognito, await signed(rsaA, { ...access, token_use: ['access'] as never }, { typ: undefined })), 401, 'token_use as an array')
})

t.test('roles and scopes: prototype paths and keys grant nothing and pollute nothing', async (t) => {
  const rolesOf = async (path: string, payload: JWTPayload): Promise<unknown> => {
    const { app } = await api(t, { roles: path })
    const res = await app.inject({ url: '/admin', headers: bearer(await signed(rsaA, claims(payload))) })
    return res.statusCode === 200 ? res.json().roles : res.statusCode
  }
  for (const path of ['__proto__', 'constructor', 'constructor.name', '__proto__.toString', 'hasOwnProperty', 'realm_access.__proto__', 'realm_access.constructor']) {
    t.equal(await rolesOf(path, { realm_access: { roles: ['admin'] } }), 403, `roles path ${path} on claims without it: no roles`)
  }
  // An own `__proto__` claim (JSON.parse makes it an own property): read as the signed claim it is, nothing more.
  t.same(await rolesOf('__proto__', JSON.parse('{"__proto__": ["admin"]}') as JWTPayload), ['admin'], 'an own __proto__ claim is an ordinary claim')
  t.same(await rolesOf('realm_access.roles', JSON.parse('{"realm_access": {"__proto__": {"roles": ["admin"]}}}') as JWTPayload), 403, 'roles behind an own __proto__ object are not inherited')
  t.equal(({} as Record<string, unknown>).roles, undefined, 'Object.prototype untouched')
  const { app } = await api(t, { scopes: ['scope', 'scp', 'permissions'] })
  const res = await app.inject({ url: '/me', headers: bearer(await signed(rsaA, JSON.parse(JSON.stringify(claims({ scope: '__proto__ constructor read' }))))) })
  t.same(res.json().scopes, ['__proto__', 'constructor', 'read'], 'scope names are plain strings')
})

t.test('generic bodies: every 401/503 says nothing of the cause; the log has it, never the token', async (t) => {
  const { app, logs } = await api(t)
  const token = await signed(rsaA, claims({ aud: 'not-this-api' }))
  const refused = await app.inject({ url: '/me', headers: bearer(token) })
  t.equal(refused.statusCode, 401)
  t.same(refused.json(), { statusCode: 401, code: 'FST_MULTIAUTH_CREDENTIALS_INVALID', error: 'Unauthorized', message: 'Invalid credentials' }, 'a refused token: the generic 401')
  t.match(logs(), /token iss\/aud \(or another claim\) not accepted/, 'the reason is in the log')

  routes.set('/jwks', { status: 500, body: 'internal details of the provider' })
  t.teardown(serveDefaults)
  const { app: cold, logs: coldLogs } = await api(t)
  const down = await cold.inject({ url: '/me', headers: bearer(await signed(rsaA)) })
  t.equal(down.statusCode, 503)
  t.same(down.json(), { statusCode: 503, code: 'FST_MULTIAUTH_ISSUER_UNAVAILABLE', error: 'Service Unavailable', message: 'Token issuer unavailable' }, 'provider down: the generic 503')
  t.notMatch(down.body, /127\.0\.0\.1|internal|answered/, 'no URL, status or provider text in the body')
  t.match(coldLogs(), new RegExp(`GET ${own}/jwks answered 500`), 'the cause (URL and status) is in the log')
  const all = logs() + coldLogs()
  for (const part of [...token.split('.'), ...(await signed(rsaA)).split('.').slice(2)]) t.notOk(all.includes(part), 'no token part in the log')
})

t.test('a key set that drips its body: the fetch timeout covers reading it (the request gets our 503, not the guard’s timeout)', async (t) => {
  const dripping = new Set<ServerResponse>()
  const drip = (res: ServerResponse): void => {
    dripping.add(res)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{"keys":[')
    const timer = setInterval(() => res.write(' '), 100)
    res.on('close', () => { clearInterval(timer); dripping.delete(res) })
  }
  routes.set('/drip-jwks', drip)
  routes.set('/drip/.well-known/openid-configuration', drip)
  t.teardown(() => { routes.delete('/drip-jwks'); routes.delete('/drip/.well-known/openid-configuration'); for (const res of dripping) res.destroy() })
  // callbackTimeout 4 s: each fetch gives up after 2 s, two seconds before the guard would. An
  // endless body must not outlive that: the 503 is ours (ISSUER_UNAVAILABLE), not CALLBACK_TIMEOUT.
  const { app } = await api(t, { jwksUri: `${own}/drip-jwks` }, { callbackTimeout: 4000 })
  const keys = await app.inject({ url: '/me', headers: bearer(await signed(rsaA)) })
  t.equal(keys.json().code, 'FST_MULTIAUTH_ISSUER_UNAVAILABLE', 'a dripping key set: our 503')
  const { app: discovering } = await api(t, { issuer: `${own}/drip`, jwksUri: undefined }, { callbackTimeout: 4000 })
  const doc = await discovering.inject({ url: '/me', headers: bearer(await signed(rsaA, claims({ iss: `${own}/drip` }))) })
  t.equal(doc.json().code, 'FST_MULTIAUTH_ISSUER_UNAVAILABLE', 'a dripping discovery document: our 503')
  t.equal(hitsOf('/.well-known/oauth-authorization-server/drip'), 0, 'the RFC 8414 location is not tried once the deadline has passed')
  await sleep(50)
  t.equal(dripping.size, 0, 'both dripping connections were closed by us')
})

t.test('cache: garbage from the provider never replaces the last good set; a removed key stops verifying once the set is refetched', async (t) => {
  const { app } = await api(t, { cooldown: '1s', cacheMaxAge: '1s' })
  const token = await signed(rsaA)
  t.equal(await status(app, token), 200)
  routes.set('/jwks', { body: '<html>captive portal</html>' })
  t.teardown(serveDefaults)
  await sleep(1100)
  t.equal(await status(app, token), 200, 'garbage answer: the last good set still verifies the known kid')
  t.equal(await status(app, await signed(rsaB, claims(), { kid: 'new-kid' })), 503, 'an unknown kid: 503, never a pass')
  routes.set('/jwks', { body: { keys: [{ kty: 'oct', kid: 'rsa-a', k: OCT_SECRET.toString('base64url') }] } })
  await sleep(1100)
  t.equal(await status(app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid: 'rsa-a' }, claims(), OCT_SECRET)), 401, 'a set replacing rsa-a by an oct key: HS256 still refused')
  t.equal(await status(app, token), 401, 'and rsa-a, no longer published, no longer verifies')
})

t.test('bounded fetches: alternating known and unknown kids, and a failing discovery, cost one fetch per cooldown', async (t) => {
  const { app } = await api(t) // default cooldown 30 s
  t.equal(await status(app, await signed(rsaA)), 200)
  const started = Date.now()
  const before = hitsOf('/jwks')
  const answers: number[] = []
  for (let i = 0; i < 100; i++) {
    const token = i % 2 === 0 ? await signed(rsaA) : await signed(rsaB, claims(), { kid: randomBytes(8).toString('hex') })
    answers.push(await status(app, token))
  }
  t.same(answers, Array.from({ length: 100 }, (_, i) => i % 2 === 0 ? 200 : 401), 'known kids pass, unknown ones are refused, in turn')
  const fetched = hitsOf('/jwks') - before
  t.ok(fetched <= 1 + Math.floor((Date.now() - started) / 30_000), `${fetched} key set fetch(es) for 100 alternating tokens`)

  routes.delete('/nodoc/.well-known/openid-configuration')
  const { app: broken } = await api(t, { issuer: `${own}/nodoc`, jwksUri: undefined })
  const token = await signed(rsaA, claims({ iss: `${own}/nodoc` }))
  const codes = new Set<number>()
  for (let i = 0; i < 50; i++) codes.add(await status(broken, token))
  t.same([...codes], [503], 'every one a 503')
  t.equal(hitsOf('/nodoc/.well-known/openid-configuration') + hitsOf('/.well-known/oauth-authorization-server/nodoc'), 2, '50 tokens, one discovery attempt (both locations once) per 30 s cooldown')
})

t.test('garbage signatures, algorithms and kids never make a 500 (fast-check)', async (t) => {
  const { app } = await api(t)
  t.equal(await status(app, await signed(rsaA)), 200)
  const payload = Buffer.from(JSON.stringify(claims())).toString('base64url')
  const seed = Date.now() ^ 0x5eed
  t.comment(`fast-check seed ${seed}`)
  await fc.assert(fc.asyncProperty(
    fc.constantFrom('RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'HS256', 'none', 'RSA-OAEP'),
    fc.option(fc.constantFrom('rsa-a', 'rsa-b', 'ec', 'ed', 'nope'), { nil: undefined }),
    fc.uint8Array({ minLength: 0, maxLength: 600 }),
    async (alg, kid, signature) => {
      const header = Buffer.from(JSON.stringify({ alg, typ: 'at+jwt', ...(kid === undefined ? {} : { kid }) })).toString('base64url')
      const code = await status(app, `${header}.${payload}.${Buffer.from(signature).toString('base64url')}`)
      return code === 401
    }
  ), { seed, numRuns: 300 })
  t.pass('300 forged tokens, all 401')
})

t.test('publishKeys: only public members, never an HMAC secret; our published key is no HS256 secret either', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const edPair = generateKeyPairSync('ed25519')
  const a = await buildApp({
    token: {
      findUser: (c) => ({ id: c.sub }),
      issuer: 'http://127.0.0.1:1',
      keys: [
        { kid: 'r', privateKey: rsa.privateKey, publicKey: rsa.publicKey },
        { kid: 'e', privateKey: p256.privateKey },
        { kid: 'd', privateKey: edPair.privateKey }
      ],
      publishKeys: true
    }
  })
  a.get('/me', { onRequest: a.authGuard(['token']) }, async () => ({ ok: true }))
  await a.ready()
  t.teardown(() => a.close())
  const published = (await a.inject({ url: '/.well-known/jwks.json' })).json() as { keys: Array<Record<string, unknown>> }
  t.equal(published.keys.length, 3)
  for (const jwk of published.keys) {
    t.same(Object.keys(jwk).filter((name) => ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'].includes(name)), [], `${String(jwk.kid)}: no private member`)
    t.equal(jwk.use, 'sig')
  }
  const pem = createPublicKey({ key: published.keys[0] as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string
  const now = Math.floor(Date.now() / 1000)
  const forged = handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid: 'r' }, { iss: 'http://127.0.0.1:1', sub: 'x', jti: 'j', iat: now, exp: now + 60 }, pem)
  t.equal(await status(a, forged), 401, 'HS256 keyed with the published PEM: refused by the local verifier')
  await t.rejects(buildApp({ token: { findUser: () => ({}), keys: [{ kid: 'r', privateKey: rsa.privateKey }, { kid: 'h', secret: randomBytes(32).toString('base64url') }], publishKeys: true } }), /token\.keys\[1\] is an HS256 secret, which is never published/, 'an HS256 key beside RSA: refused at registration')
})

t.test('a published key jose cannot use (RSA under 2048 bits, malformed members): 401, not 500 (failed before the fix: 500)', async (t) => {
  // Regression: WebCrypto's TypeError/DOMException for such a key was not mapped, so any caller
  // naming its kid got a 500 and an error-level log line. All five cases were 500s before the fix.
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 })
  const smallKey: OwnKey = { kid: 'small', alg: 'RS256', privateKey: small.privateKey, publicJwk: { ...(small.publicKey.export({ format: 'jwk' }) as JWK), kid: 'small' } }
  routes.set('/jwks-broken', { body: { keys: [smallKey.publicJwk, { kty: 'RSA', kid: 'short-n', n: 'AA', e: 'AQAB' }, { kty: 'EC', kid: 'bad-ec', crv: 'P-256', x: 'AA', y: 'AA' }, { kty: 'OKP', kid: 'bad-ed', crv: 'Ed25519', x: 'AA' }, { kty: 'RSA', kid: 'no-n' }] } })
  t.teardown(() => routes.delete('/jwks-broken'))
  const { app, logs } = await api(t, { jwksUri: `${own}/jwks-broken` })
  for (const [kid, alg] of [['short-n', 'RS256'], ['bad-ec', 'ES256'], ['bad-ed', 'EdDSA'], ['no-n', 'RS256']] as const) {
    t.equal(await status(app, `${handMadeJwt({ alg, typ: 'at+jwt', kid }, claims())}${randomBytes(64).toString('base64url')}`), 401, `kid ${kid}: 401`)
  }
  t.equal(await status(app, rawRs256(smallKey, {}, claims())), 401, 'a genuine signature by the 1024-bit key: 401 (jose requires 2048 bits)')
  t.notMatch(logs(), /"level":50/, 'nothing logged at error level')
  t.match(logs(), /token names a published key that cannot verify it/, 'the reason is in the log (info)')
})

t.test('a compressed key set is bounded after decompression (a gzip bomb is a failed fetch)', async (t) => {
  const bomb = gzipSync(Buffer.concat([Buffer.from('{"keys":['), Buffer.alloc(20 * 1024 * 1024, 0x20), Buffer.from(']}')]))
  t.ok(bomb.length < 64 * 1024, `${bomb.length} bytes on the wire, 20 MiB inflated`)
  routes.set('/bomb', (res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': bomb.length }); res.end(bomb) })
  t.teardown(() => routes.delete('/bomb'))
  const { app, logs } = await api(t, { jwksUri: `${own}/bomb` })
  const res = await app.inject({ url: '/me', headers: bearer(await signed(rsaA)) })
  t.equal(res.json().code, 'FST_MULTIAUTH_ISSUER_UNAVAILABLE', 'our 503')
  t.match(logs(), /body exceeds 262144 bytes/, 'refused by the size bound, while inflating')
})

t.test('issuer and jwksUri with credentials in them are refused at registration (they would be logged, and fetch refuses them)', async (t) => {
  // Regression: both were accepted before the fix (then every fetch failed, and debug lines printed the password).
  for (const option of ['issuer', 'jwksUri'] as const) {
    await t.rejects(buildApp({ token: { findUser: () => ({}), issuers: [{ issuer: own, audience: 'api', [option]: `http://user:secret@127.0.0.1:${port}/x` }] } }), new RegExp(`token\\.issuers\\[0\\]\\.${option} must hold no credentials`), option)
  }
})

t.test('a key set huge in member count (80,000 empty members within 256 KiB) is read; the genuine key still verifies, junk kids are 401', async (t) => {
  const junk = `{"keys":[${'{},'.repeat(80_000)}${JSON.stringify(rsaA.publicJwk)}]}`
  t.ok(junk.length < 256 * 1024, `${junk.length} bytes`)
  routes.set('/many', { body: junk })
  t.teardown(() => routes.delete('/many'))
  const { app } = await api(t, { jwksUri: `${own}/many` })
  t.equal(await status(app, await signed(rsaA)), 200, 'the genuine key, last of 80,001')
  const started = process.hrtime.bigint()
  const codes = new Set<number>()
  for (let i = 0; i < 20; i++) codes.add(await status(app, await signed(rsaB, claims(), { kid: randomBytes(6).toString('hex') })))
  t.same([...codes], [401], 'unknown kids: 401')
  t.comment(`20 unknown-kid tokens against an 80,001-member set: ${Number(process.hrtime.bigint() - started) / 1e6} ms (a trusted provider's set; no attacker input grows it)`)
})

t.test('POST /tokens/revoke is for this service’s tokens: a provider token cannot log a local user out everywhere (failed before the fix)', async (t) => {
  // Regression: the route's optional guard admitted a provider token as the Bearer, so
  // `{ all: true }` ran revokeAll(<the provider's sub>) over OUR users — a provider sub is not
  // our user id (docs/tokens.md) — and a provider token without jti made helpers.revoke throw (500).
  // Before the fix: 200 for the logout, the local token then 401; 500 for the jti-less token.
  const providerToken = await signed(rsaA, claims({ sub: 'ann', jti: 'p-1' }))
  const withUser = await tokenApp({
    revocation: true,
    refresh: true,
    routes: true,
    findUser: (c) => ({ id: c.sub }),
    issuers: [{ issuer: own, jwksUri: `${own}/jwks`, audience: 'api' }]
  })
  await withUser.ready()
  t.teardown(() => withUser.close())
  const annLocal = (await login(withUser, 'ann')).token
  t.equal(await status(withUser, annLocal), 200, 'ann’s local token')
  t.equal(await status(withUser, providerToken), 200, 'the provider token, whose sub happens to be "ann", passes as a provider token')
  const everywhere = await withUser.inject({ method: 'POST', url: '/tokens/revoke', headers: bearer(providerToken), payload: { all: true } })
  t.equal(everywhere.statusCode, 401, 'a provider token asking to log out everywhere: 401 (it names no user of ours)')
  t.equal(await status(withUser, annLocal), 200, 'ann’s local token still passes')
  const noJti = await withUser.inject({ method: 'POST', url: '/tokens/revoke', headers: bearer(await signed(rsaA, claims({ sub: 'ann' }))), payload: { token: annLocal } })
  t.equal(noJti.statusCode, 200, 'a jti-less provider token as Bearer: the body’s token is revoked, no 500')
  t.equal(await status(withUser, annLocal), 401, 'the body’s (local) token is revoked as asked')
})
