import t from 'tap'
import type { Test } from 'tap'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { createPublicKey, randomBytes } from 'node:crypto'
import { decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose'
import type { JWTPayload } from 'jose'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { Writable } from 'node:stream'
import type { TokenOptions, TrustedIssuer } from '../src/index.js'
import { buildApp } from './helpers/app.js'
import { freePort } from './helpers/redis.js'
import { startResourceProvider } from './helpers/oidc-resource-provider.js'
import type { ResourceProvider } from './helpers/oidc-resource-provider.js'
import { handMadeJwt, rsaPair, SECRET } from './helpers/tokens.js'

// token.issuers against a REAL provider: oidc-provider, in this process, on 127.0.0.1, issuing
// RFC 9068 JWT access tokens for a resource to a client_credentials client. Every fetch of its
// keys is counted at the provider.

const provider = await startResourceProvider()
t.teardown(async () => { await provider.close() })

function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

/** An API trusting `provider` (plus `token` options of its own), with `GET /me` (any token) and `GET /read` (scope read). */
async function issuerApp (issuer: Partial<TrustedIssuer> = {}, token: Partial<TokenOptions> = {}, extra: { callbackTimeout?: number, server?: FastifyServerOptions } = {}): Promise<FastifyInstance> {
  const app = await buildApp({
    realm: 'api',
    ...(extra.callbackTimeout === undefined ? {} : { callbackTimeout: extra.callbackTimeout }),
    token: {
      findUser: (claims) => ({ id: claims.sub }),
      issuers: [{ issuer: provider.issuer, audience: provider.audience, ...issuer }],
      ...token
    } as TokenOptions
  }, extra.server)
  app.get('/me', { onRequest: app.authGuard(['token']) }, async (request) => request.auth)
  app.get('/read', { onRequest: app.authGuard({ methods: ['token'], scopes: ['read'] }) }, async () => ({ ok: true }))
  await app.ready()
  return app
}

/** Claims a provider token carries, for tokens this test signs with the provider's own key. */
function providerClaims (extra: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000)
  return { iss: provider.issuer, aud: provider.audience, sub: 'client-1', client_id: 'client-1', scope: 'read', iat: now, exp: now + 300, jti: randomBytes(8).toString('hex'), ...extra }
}

/** A token signed by a key the provider never published, under `kid`. */
async function foreignToken (kid: string, claims: JWTPayload = providerClaims()): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256')
  return await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid }).sign(privateKey)
}

async function expect401 (t: Test, app: FastifyInstance, token: string, what: string): Promise<void> {
  const res = await app.inject({ url: '/me', headers: bearer(token) })
  t.equal(res.statusCode, 401, `${what} → 401`)
  t.match(res.headers['www-authenticate'], /error="invalid_token"/, `${what} → invalid_token challenge`)
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

t.test('a valid provider access token → 200, with scopes, issuer, and the keys found by discovery', async (t) => {
  const discoveries = provider.discoveryRequests()
  const fetches = provider.jwksRequests()
  const app = await issuerApp()
  t.teardown(() => app.close())
  t.equal(provider.jwksRequests(), fetches, 'nothing is fetched at registration')
  const token = await provider.accessToken({ scope: 'read' })
  t.equal(decodeProtectedHeader(token).typ, 'at+jwt', 'the provider issues an RFC 9068 access token')
  const me = await app.inject({ url: '/me', headers: bearer(token) })
  t.equal(me.statusCode, 200)
  const { claims, ...auth } = me.json()
  t.same(auth, { method: 'token', user: { id: provider.clientId }, roles: [], scopes: ['read'], issuer: provider.issuer }, 'request.auth')
  t.match(claims, { iss: provider.issuer, aud: provider.audience, sub: provider.clientId, scope: 'read', client_id: provider.clientId }, 'request.auth.claims: the verified payload')
  t.equal((await app.inject({ url: '/read', headers: bearer(token) })).statusCode, 200, 'scope read admits')
  t.equal((await app.inject({ url: '/read', headers: bearer(await provider.accessToken({ scope: 'write' })) })).statusCode, 403, 'scope write only → 403')
  t.equal(provider.discoveryRequests() - discoveries, 1, 'one discovery')
  t.equal(provider.jwksRequests() - fetches, 1, 'one JWKS fetch for three tokens')
})

t.test('refusals: wrong audience, wrong issuer, expired, alg none, HS256 with the public key, unknown kid, typ, sub', async (t) => {
  const app = await issuerApp()
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/me', headers: bearer(await provider.accessToken()) })).statusCode, 200, 'warm: keys fetched')
  // What an attacker reads from jwks_uri (before counting: this fetch is the test's own).
  const jwks = await (await fetch(`${provider.issuer}/jwks`)).json() as { keys: Array<Record<string, unknown>> }
  const fetches = provider.jwksRequests()

  await expect401(t, app, await provider.accessToken({ resource: provider.otherAudience }), 'a genuine token minted for another API of the provider')
  await expect401(t, app, await provider.sign(providerClaims({ iss: 'https://elsewhere.example.test' })), 'a token with another iss, signed by the provider key')
  await expect401(t, app, await provider.sign(providerClaims({ iss: `${provider.issuer}/` })), 'an iss differing by a trailing slash')
  const now = Math.floor(Date.now() / 1000)
  await expect401(t, app, await provider.sign(providerClaims({ iat: now - 7200, exp: now - 3600 })), 'expired an hour ago (signed with the provider key)')
  await expect401(t, app, await provider.sign(providerClaims({ nbf: now + 3600 })), 'not valid for another hour')
  await expect401(t, app, await provider.sign(providerClaims({ exp: undefined })), 'no exp')

  const kid = provider.currentKid()
  await expect401(t, app, handMadeJwt({ alg: 'none', typ: 'at+jwt', kid }, providerClaims()), 'alg none')
  await expect401(t, app, handMadeJwt({ alg: 'none', typ: 'at+jwt' }, providerClaims()), 'alg none without kid')
  // The algorithm-confusion attack: the published public key, as an HMAC secret.
  const publicJwk = jwks.keys.find((key) => key.kid === kid) as Record<string, unknown>
  const publicPem = createPublicKey({ key: publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string
  await expect401(t, app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid }, providerClaims(), publicPem), 'HS256 keyed with the PEM of the published key')
  await expect401(t, app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid }, providerClaims(), JSON.stringify(publicJwk)), 'HS256 keyed with the JWK JSON')
  await expect401(t, app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid }, providerClaims(), Buffer.from(publicJwk.n as string, 'base64url')), 'HS256 keyed with the modulus')

  await expect401(t, app, await provider.sign(providerClaims(), { typ: 'JWT' }), 'typ JWT (default accepts at+jwt only)')
  await expect401(t, app, await provider.sign(providerClaims(), { typ: undefined }), 'no typ')
  await expect401(t, app, await provider.sign(providerClaims({ sub: 42 as never })), 'a numeric sub')
  await expect401(t, app, await provider.sign(providerClaims({ sub: undefined })), 'no sub')
  await expect401(t, app, await provider.sign(providerClaims({ aud: undefined })), 'no aud')
  // A tampered payload under a genuine signature.
  const [header, , signature] = (await provider.accessToken()).split('.')
  await expect401(t, app, `${header}.${Buffer.from(JSON.stringify(providerClaims({ scope: 'read write admin' }))).toString('base64url')}.${signature}`, 'a payload edited under a genuine signature')
  t.equal(provider.jwksRequests(), fetches, 'none of these fetched the keys again (all within the cooldown, kid known)')

  await expect401(t, app, await foreignToken('not-published'), 'a kid the provider does not publish')
  t.ok(provider.jwksRequests() - fetches <= 1, `an unknown kid refetches at most once (here ${provider.jwksRequests() - fetches})`)
})

t.test('wrong issuer: an untrusted iss is refused with no network call; a trusted one is not picked by the token’s kid', async (t) => {
  const app = await issuerApp()
  t.teardown(() => app.close())
  const fetches = provider.jwksRequests()
  const discoveries = provider.discoveryRequests()
  await expect401(t, app, await foreignToken('any', providerClaims({ iss: 'https://attacker.example.test' })), 'an untrusted issuer')
  await expect401(t, app, await foreignToken('any', providerClaims({ iss: undefined })), 'no iss')
  await expect401(t, app, 'not.a.jwt', 'not a JWT')
  t.equal(provider.jwksRequests(), fetches, 'no JWKS fetch')
  t.equal(provider.discoveryRequests(), discoveries, 'no discovery either')
})

t.test('local keys and a trusted issuer side by side: each token goes its own way; the local path stays synchronous', async (t) => {
  const app = await issuerApp({}, { secret: SECRET, issuer: 'https://this-api.example.test', audience: 'this-api' })
  t.teardown(() => app.close())
  const local = (await app.authTokens.issue({ id: 'ann' })).accessToken
  const me = await app.inject({ url: '/me', headers: bearer(local) })
  t.equal(me.statusCode, 200, 'a local token')
  t.equal(me.json().issuer, undefined, 'no issuer on a local token')
  t.equal((await app.inject({ url: '/me', headers: bearer(await provider.accessToken()) })).statusCode, 200, 'a provider token')
  await expect401(t, app, await foreignToken('x', providerClaims({ iss: 'https://this-api.example.test', aud: 'this-api' })), 'a token claiming the local issuer, signed by another key')
})

t.test('revocation does not apply to provider tokens (their sub is the provider’s, not ours)', async (t) => {
  const app = await issuerApp({}, { secret: SECRET, revocation: true })
  t.teardown(() => app.close())
  const token = await provider.accessToken()
  await app.authTokens.revokeAll(provider.clientId)
  t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200, 'revokeAll(sub) does not touch a provider token')
  const local = (await app.authTokens.issue({ id: provider.clientId })).accessToken
  await app.authTokens.revokeAll(provider.clientId)
  t.equal((await app.inject({ url: '/me', headers: bearer(local) })).statusCode, 401, 'while local tokens of that sub are revoked')
})

t.test('JWKS endpoint down: a cached key keeps working, a new kid is 503, and the provider is asked at most once per cooldown', async (t) => {
  const app = await issuerApp({ cooldown: '1s', cacheMaxAge: '1s' })
  t.teardown(() => app.close())
  t.teardown(() => provider.jwksDown(false))
  const token = await provider.accessToken()
  t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200, 'keys fetched while up')
  provider.jwksDown(true)
  await sleep(1100) // past cacheMaxAge and cooldown: the next use must try the provider
  const before = provider.jwksRequests()
  t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200, 'stale cache + provider down: the last good key set verifies a known kid')
  t.equal(provider.jwksRequests() - before, 1, 'after one failed fetch')
  const unknown = await app.inject({ url: '/me', headers: bearer(await foreignToken('published-during-outage')) })
  t.equal(unknown.statusCode, 503, 'a kid the last good set lacks → 503, never a pass')
  t.equal(unknown.json().code, 'FST_MULTIAUTH_ISSUER_UNAVAILABLE')
  t.equal(unknown.json().message, 'Token issuer unavailable', 'a generic message')
  t.notMatch(unknown.body, provider.issuer, 'the provider URL is not in the answer')
  for (let i = 0; i < 20; i++) t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200)
  t.ok(provider.jwksRequests() - before <= 3, `20 more requests during the outage made ${provider.jwksRequests() - before - 1} fetch(es), one per cooldown at most`)
  provider.jwksDown(false)
  await sleep(1100)
  const beforeUp = provider.jwksRequests()
  t.equal((await app.inject({ url: '/me', headers: bearer(await provider.accessToken()) })).statusCode, 200, 'back up: verifies again')
  t.equal(provider.jwksRequests() - beforeUp, 1, 'fetched afresh')
})

t.test('a provider that hangs: the fetch gives up within callbackTimeout, the last good keys answer; debug logs, never a token', async (t) => {
  let hang = false
  const port = await freePort()
  // Relays the provider's key set, or never answers.
  const relay: Server = createServer((req, res) => {
    if (hang) return
    fetch(`${provider.issuer}/jwks`).then(async (answer) => {
      res.setHeader('content-type', 'application/json')
      res.end(await answer.text())
    }).catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve))
  t.teardown(async () => { relay.closeAllConnections(); await new Promise<void>((resolve) => relay.close(() => resolve())) })
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  // callbackTimeout 2 s: the key fetch gives up after 1 s, a second before the guard would.
  const app = await issuerApp({ jwksUri: `http://127.0.0.1:${port}/jwks`, cooldown: '1s', cacheMaxAge: '1s' }, {}, { callbackTimeout: 2000, server: { logger: { level: 'debug', stream } } })
  t.teardown(() => app.close())
  const token = await provider.accessToken()
  t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200)
  hang = true
  await sleep(1100)
  const res = await app.inject({ url: '/me', headers: bearer(token) })
  t.equal(res.statusCode, 200, 'stale cache, provider hanging: the known kid verifies with the last good key set, in the same request')
  const unknown = await app.inject({ url: '/me', headers: bearer(await foreignToken('new-during-hang')) })
  t.equal(unknown.json().code, 'FST_MULTIAUTH_ISSUER_UNAVAILABLE', 'an unknown kid: our 503')
  const log = lines.join('')
  t.match(log, /multiauth: fetching the issuer's key set/, 'fetches are logged at debug level')
  t.match(log, /multiauth: the issuer's keys could not be fetched/, 'so is the failure')
  t.notOk(log.includes(token.split('.')[2] as string), 'no token signature in the log')
  t.notOk(log.includes(token.split('.')[1] as string), 'no token payload in the log')
})

t.test('JWKS rotated at the provider: the new key is accepted after exactly one refetch; the old one while still published', async (t) => {
  const app = await issuerApp({ cooldown: '1s' })
  t.teardown(() => app.close())
  const old = await provider.accessToken()
  t.equal((await app.inject({ url: '/me', headers: bearer(old) })).statusCode, 200)
  const oldKid = provider.currentKid()
  await provider.rotate()
  const rotated = await provider.accessToken()
  t.not(decodeProtectedHeader(rotated).kid, oldKid, 'the provider signs with the new key')
  await sleep(1100) // the last fetch is older than the cooldown
  const before = provider.jwksRequests()
  t.equal((await app.inject({ url: '/me', headers: bearer(rotated) })).statusCode, 200, 'new kid → one refetch → 200')
  t.equal(provider.jwksRequests() - before, 1, 'exactly one refetch')
  t.equal((await app.inject({ url: '/me', headers: bearer(old) })).statusCode, 200, 'the old key is still published and still verifies')
  t.equal((await app.inject({ url: '/me', headers: bearer(await provider.accessToken()) })).statusCode, 200)
  t.equal(provider.jwksRequests() - before, 1, 'and nothing more was fetched')
})

t.test('a flood of 1,000 random kids costs at most one JWKS fetch per 30 s cooldown (measured: 0 after the first)', async (t) => {
  const app = await issuerApp()
  t.teardown(() => app.close())
  const started = Date.now()
  t.equal((await app.inject({ url: '/me', headers: bearer(await provider.accessToken()) })).statusCode, 200, 'the first token fetches the keys')
  const before = provider.jwksRequests()
  const header = (kid: string): string => Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid })).toString('base64url')
  const payload = Buffer.from(JSON.stringify(providerClaims())).toString('base64url')
  const signature = randomBytes(256).toString('base64url')
  let refused = 0
  for (let batch = 0; batch < 20; batch++) {
    const answers = await Promise.all(Array.from({ length: 50 }, async () => await app.inject({
      url: '/me',
      headers: bearer(`${header(randomBytes(12).toString('base64url'))}.${payload}.${signature}`)
    })))
    refused += answers.filter((res) => res.statusCode === 401).length
  }
  const elapsed = Date.now() - started
  const fetched = provider.jwksRequests() - before
  t.equal(refused, 1000, 'all 1,000 refused')
  // jose refetches on an unknown kid only once the last fetch is older than the cooldown (30 s).
  t.ok(fetched <= Math.floor(elapsed / 30_000), `${fetched} JWKS fetches for 1,000 random kids in ${elapsed} ms (bound: one per full 30 s)`)
  t.comment(`kid flood: ${fetched} JWKS fetches for 1,000 random kids in ${elapsed} ms`)

  // Once the cooldown has passed, a concurrent flood shares one refetch (jose de-duplicates it) and then cools down again.
  const cooled = await issuerApp({ cooldown: '1s' })
  t.teardown(() => cooled.close())
  t.equal((await cooled.inject({ url: '/me', headers: bearer(await provider.accessToken()) })).statusCode, 200)
  await sleep(1100)
  const floodStart = Date.now()
  const beforeCooled = provider.jwksRequests()
  for (let batch = 0; batch < 20; batch++) {
    await Promise.all(Array.from({ length: 50 }, async () => await cooled.inject({
      url: '/me',
      headers: bearer(`${header(randomBytes(12).toString('base64url'))}.${payload}.${signature}`)
    })))
  }
  const cooledFetches = provider.jwksRequests() - beforeCooled
  const floodElapsed = Date.now() - floodStart
  t.ok(cooledFetches >= 1 && cooledFetches <= 1 + Math.floor(floodElapsed / 1000), `after the 1 s cooldown: ${cooledFetches} fetch(es) for 1,000 random kids in ${floodElapsed} ms`)
  t.comment(`kid flood after the cooldown: ${cooledFetches} JWKS fetch(es) for 1,000 random kids in ${floodElapsed} ms`)
})

/** A plain HTTP server answering `routes` (path → status and JSON body); anything else 404. */
async function jsonServer (routes: (base: string) => Record<string, { status?: number, body: unknown, chunked?: boolean }>): Promise<{ base: string, hits: Map<string, number>, close: () => Promise<void> }> {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const table = routes(base)
  const hits = new Map<string, number>()
  const server: Server = createServer((req, res) => {
    const path = req.url ?? ''
    hits.set(path, (hits.get(path) ?? 0) + 1)
    const route = table[path]
    res.statusCode = route?.status ?? (route === undefined ? 404 : 200)
    res.setHeader('content-type', 'application/json')
    const body = route === undefined ? '{}' : typeof route.body === 'string' ? route.body : JSON.stringify(route.body)
    if (route?.chunked !== true) {
      res.end(body)
      return
    }
    // No content-length: the size is only known by reading.
    for (let at = 0; at < body.length; at += 16_384) res.write(body.slice(at, at + 16_384))
    res.end()
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return { base, hits, close: async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) } }
}

t.test('discovery: RFC 8414 when there is no OpenID configuration; a document naming another issuer or an unsafe jwks_uri is a 503', async (t) => {
  const jwksUri = `${provider.issuer}/jwks`
  const metadata = await jsonServer((base) => ({
    '/.well-known/oauth-authorization-server/tenant': { body: { issuer: `${base}/tenant`, jwks_uri: jwksUri } },
    '/.well-known/openid-configuration/other': { body: { issuer: `${base}/someone-else`, jwks_uri: jwksUri } },
    '/unsafe/.well-known/openid-configuration': { body: { issuer: `${base}/unsafe`, jwks_uri: 'http://keys.example.test/jwks' } }
  }))
  t.teardown(metadata.close)
  const appFor = async (issuer: string): Promise<FastifyInstance> => {
    const app = await issuerApp({ issuer })
    t.teardown(() => app.close())
    return app
  }
  const tenant = `${metadata.base}/tenant`
  const app = await appFor(tenant)
  const res = await app.inject({ url: '/me', headers: bearer(await provider.sign(providerClaims({ iss: tenant }))) })
  t.equal(res.statusCode, 200, 'keys found through RFC 8414 metadata (path inserted after the host)')
  t.equal(metadata.hits.get('/tenant/.well-known/openid-configuration'), 1, 'after trying OpenID Connect discovery first')

  const other = `${metadata.base}/other`
  const mismatch = await (await appFor(other)).inject({ url: '/me', headers: bearer(await provider.sign(providerClaims({ iss: other }))) })
  t.equal(mismatch.statusCode, 503, 'a document naming another issuer → 503')
  t.equal(mismatch.json().code, 'FST_MULTIAUTH_ISSUER_UNAVAILABLE')
  const unsafe = `${metadata.base}/unsafe`
  t.equal((await (await appFor(unsafe)).inject({ url: '/me', headers: bearer(await provider.sign(providerClaims({ iss: unsafe }))) })).statusCode, 503, 'http jwks_uri off loopback → 503')
})

t.test('discovery failure is a 503, retried only after the cooldown; an explicit jwksUri needs no discovery', async (t) => {
  const port = await freePort() // nothing listens here
  const issuer = `http://127.0.0.1:${port}`
  const app = await issuerApp({ issuer, cooldown: '1s' })
  t.teardown(() => app.close())
  const token = await provider.sign(providerClaims({ iss: issuer }))
  const res = await app.inject({ url: '/me', headers: bearer(token) })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_MULTIAUTH_ISSUER_UNAVAILABLE')

  const discoveries = provider.discoveryRequests()
  const direct = await issuerApp({ jwksUri: `${provider.issuer}/jwks` })
  t.teardown(() => direct.close())
  t.equal((await direct.inject({ url: '/me', headers: bearer(await provider.accessToken()) })).statusCode, 200)
  t.equal(provider.discoveryRequests(), discoveries, 'no discovery with jwksUri')
})

t.test('the key set response is bounded (256 KiB); an oversized or non-key-set answer is a failed fetch (503)', async (t) => {
  const { publicKey } = rsaPair()
  const jwk = { ...(await exportJWK(createPublicKey(publicKey))), kid: 'k', alg: 'RS256', use: 'sig' }
  const big = JSON.stringify({ keys: Array.from({ length: 700 }, (_, i) => ({ ...jwk, kid: `k${i}` })) })
  t.ok(big.length > 256 * 1024, `the oversized set is ${big.length} bytes`)
  const server = await jsonServer(() => ({
    '/big': { body: big },
    '/big-chunked': { body: big, chunked: true },
    '/notjson': { body: '{"keys": [' },
    '/notaset': { body: { keys: 'nope' } },
    '/redirect': { status: 302, body: {} }
  }))
  t.teardown(server.close)
  for (const path of ['/big', '/big-chunked', '/notjson', '/notaset', '/redirect']) {
    const app = await issuerApp({ jwksUri: `${server.base}${path}` })
    t.teardown(() => app.close())
    const res = await app.inject({ url: '/me', headers: bearer(await provider.accessToken()) })
    t.equal(res.statusCode, 503, `${path} → 503`)
  }
})

t.test('roles from the token: keycloak preset, authGuard({ roles }) without the roles option; wrong types grant nothing', async (t) => {
  const app = await buildApp({
    token: {
      findUser: (claims) => ({ id: claims.sub }),
      issuers: [{ issuer: provider.issuer, audience: provider.audience, preset: 'keycloak' }]
    }
  })
  app.get('/admin', { onRequest: app.authGuard({ methods: ['token'], roles: ['admin'] }) }, async (request) => ({ roles: request.auth?.roles, scopes: request.auth?.scopes }))
  await app.ready()
  t.teardown(() => app.close())
  const call = async (claims: JWTPayload, typ = 'JWT'): Promise<number> => (await app.inject({ url: '/admin', headers: bearer(await provider.sign(providerClaims({ typ: 'Bearer', ...claims }), { typ })) })).statusCode
  const ok = await app.inject({ url: '/admin', headers: bearer(await provider.sign(providerClaims({ typ: 'Bearer', realm_access: { roles: ['admin', 'user'] } }), { typ: 'JWT' })) })
  t.equal(ok.statusCode, 200, 'Keycloak typ JWT, realm_access.roles admin')
  t.same(ok.json(), { roles: ['admin', 'user'], scopes: ['read'] })
  t.equal(await call({ realm_access: { roles: ['admin'] } }, 'at+jwt'), 200, 'at+jwt too')
  t.equal(await call({ realm_access: { roles: ['user'] } }), 403, 'no admin role')
  t.equal(await call({ realm_access: { roles: 'admin' } }), 403, 'a string, not an array: no roles')
  t.equal(await call({ realm_access: { roles: ['admin', 1] } }), 403, 'a non-string entry: no roles')
  t.equal(await call({ realm_access: [['admin']] }), 403, 'an array in the path: no roles')
  t.equal(await call({ 'realm_access.roles': 'admin' }), 403, 'a dotted claim name of the wrong type: no roles')
  t.equal(await call({ roles: ['admin'] }), 403, 'roles elsewhere in the token: not read')
  // Keycloak's own marker: access tokens say typ "Bearer" in the payload, ID tokens "ID".
  t.equal(await call({ typ: 'ID', realm_access: { roles: ['admin'] } }), 401, 'a Keycloak ID token (claim typ "ID") is refused')
  t.equal(await call({ typ: undefined, realm_access: { roles: ['admin'] } }), 401, 'no typ claim: refused')
})

t.test('a roles option, when set, decides roles over the token\'s', async (t) => {
  const app = await buildApp({
    roles: () => ['reader'],
    token: { findUser: (claims) => ({ id: claims.sub }), issuers: [{ issuer: provider.issuer, audience: provider.audience, roles: 'groups' }] }
  })
  app.get('/admin', { onRequest: app.authGuard({ methods: ['token'], roles: ['admin'] }) }, async () => ({ ok: true }))
  await app.ready()
  t.teardown(() => app.close())
  const res = await app.inject({ url: '/admin', headers: bearer(await provider.sign(providerClaims({ groups: ['admin'] }))) })
  t.equal(res.statusCode, 403)
})

t.test('scope claims: entra scp string, auth0 permissions array, merged; wrong types fail closed', async (t) => {
  const appWith = async (issuer: Partial<TrustedIssuer>): Promise<FastifyInstance> => {
    const app = await issuerApp(issuer)
    t.teardown(() => app.close())
    return app
  }
  const scopesOf = async (app: FastifyInstance, claims: JWTPayload, typ = 'at+jwt'): Promise<unknown> => {
    const res = await app.inject({ url: '/me', headers: bearer(await provider.sign(providerClaims(claims), { typ })) })
    return res.statusCode === 200 ? res.json().scopes : res.statusCode
  }
  const entra = await appWith({ preset: 'entra' })
  t.same(await scopesOf(entra, { scope: undefined, scp: 'read write', roles: ['r'] }, 'JWT'), ['read', 'write'], 'entra: scp space-separated')
  t.equal(await scopesOf(entra, { scp: 'read' }), 401, 'entra preset: typ JWT, not at+jwt')
  t.same(await scopesOf(entra, { scope: 'admin', scp: ['read'] }, 'JWT'), ['read'], 'entra: scp array; scope not read')
  const auth0 = await appWith({ preset: 'auth0' })
  t.same(await scopesOf(auth0, { scope: 'read', permissions: ['write', 'read'] }), ['read', 'write'], 'auth0: scope and permissions merged, once each')
  t.same(await scopesOf(auth0, { scope: 'read', permissions: 'write' }), [], 'permissions as a string: no scopes at all')
  t.same(await scopesOf(auth0, { scope: 42, permissions: ['write'] }), [], 'scope of another type: no scopes at all')
  const explicit = await appWith({ scopes: ['scp', 'permissions'], typ: ['at+jwt', 'application/JWT'] })
  t.same(await scopesOf(explicit, { scope: 'x', scp: ['a'], permissions: ['b'] }, 'jwt'), ['a', 'b'], 'explicit scopes; typ compared case-insensitively, application/ optional')
  t.same(await scopesOf(explicit, { scp: ['a', { b: 1 }] }), [], 'an object in scp: no scopes')
})

t.test('presets of providers that mark access tokens otherwise: okta (no typ), cognito (token_use, client_id); no google preset', async (t) => {
  const appWith = async (issuer: Partial<TrustedIssuer>): Promise<FastifyInstance> => {
    const app = await issuerApp(issuer)
    t.teardown(() => app.close())
    return app
  }
  // `typ: undefined` leaves the header without typ, as Okta and Cognito send their tokens.
  const answer = async (app: FastifyInstance, claims: JWTPayload, typ: string | undefined): Promise<unknown> => {
    const res = await app.inject({ url: '/me', headers: bearer(await provider.sign(providerClaims(claims), { typ })) })
    return res.statusCode === 200 ? res.json().scopes : res.statusCode
  }
  const okta = await appWith({ preset: 'okta' })
  t.same(await answer(okta, { scope: undefined, scp: ['read', 'write'] }, undefined), ['read', 'write'], 'okta: no typ, scp array')
  t.same(await answer(okta, { scope: undefined, scp: ['read'] }, 'at+jwt'), ['read'], 'okta: at+jwt accepted too')
  t.equal(await answer(okta, { aud: 'client-1' }, undefined), 401, 'okta: an ID token (aud = the client id) is refused by the audience')
  t.equal(await answer(okta, {}, 'id_token+jwt'), 401, 'okta: another typ is refused')
  const oktaTyped = await appWith({ preset: 'okta', typ: 'at+jwt' })
  t.equal(await answer(oktaTyped, {}, undefined), 401, 'okta with an explicit typ: a token without typ is refused')

  const cognito = await appWith({ preset: 'cognito', audience: ['app-client-a', 'app-client-b'] })
  const cognitoClaims = { aud: undefined, client_id: 'app-client-b', token_use: 'access', scope: 'read', 'cognito:groups': ['admin'] }
  t.same(await answer(cognito, cognitoClaims, undefined), ['read'], 'cognito: no aud, no typ; client_id among the audiences, token_use access')
  t.equal(await answer(cognito, { ...cognitoClaims, token_use: 'id' }, undefined), 401, 'cognito: an ID token (token_use id) is refused')
  t.equal(await answer(cognito, { ...cognitoClaims, token_use: undefined }, undefined), 401, 'cognito: no token_use is refused')
  t.equal(await answer(cognito, { ...cognitoClaims, client_id: 'app-client-c' }, undefined), 401, 'cognito: another app client is refused')
  t.equal(await answer(cognito, { ...cognitoClaims, client_id: ['app-client-b'] }, undefined), 401, 'cognito: client_id of the wrong type is refused, never matched inside an array')
  t.equal(await answer(cognito, { ...cognitoClaims, client_id: undefined }, undefined), 401, 'cognito: no client_id is refused')
  t.equal(await answer(cognito, cognitoClaims, 'at+jwt'), 401, 'cognito: a typ Cognito never sends is refused')

  // Google ID tokens, configured explicitly (docs/tokens.md, "Google"): typ JWT, no typ-less token.
  const google = await appWith({ typ: 'JWT' })
  t.same(await answer(google, { scope: undefined }, 'JWT'), [], 'typ JWT accepted, no scopes')
  t.equal(await answer(google, {}, undefined), 401, 'a token without typ is refused')
  await t.rejects(issuerApp({ preset: 'google' as never }), /token\.issuers\[0\]\.preset: there is no "google" preset: Google access tokens are opaque/, 'preset google: refused at registration, saying why and what to do')
})

t.test('cognito preset: roles from cognito:groups', async (t) => {
  const app = await buildApp({
    token: { findUser: (claims) => ({ id: claims.sub }), issuers: [{ issuer: provider.issuer, audience: 'app-client-a', preset: 'cognito' }] }
  })
  app.get('/admin', { onRequest: app.authGuard({ methods: ['token'], roles: ['admin'] }) }, async (request) => ({ roles: request.auth?.roles }))
  await app.ready()
  t.teardown(() => app.close())
  const call = async (groups: unknown): Promise<number> => (await app.inject({
    url: '/admin',
    headers: bearer(await provider.sign(providerClaims({ aud: undefined, client_id: 'app-client-a', token_use: 'access', 'cognito:groups': groups }), { typ: undefined }))
  })).statusCode
  t.equal(await call(['admin']), 200, 'in the admin group')
  t.equal(await call(['users']), 403, 'not in it')
  t.equal(await call('admin'), 403, 'a string, not an array: no roles')
})

t.test('options are checked at registration, naming the path', async (t) => {
  const base = { issuer: provider.issuer, audience: provider.audience }
  const cases: Array<[string, unknown, RegExp]> = [
    ['empty list', [], /token\.issuers must be a non-empty array/],
    ['not a list', base, /token\.issuers must be a non-empty array/],
    ['no audience', [{ issuer: provider.issuer }], /token\.issuers\[0\]\.audience is required/],
    ['empty audience list', [{ ...base, audience: [] }], /token\.issuers\[0\]\.audience must be a non-empty string/],
    ['http issuer off loopback', [{ ...base, issuer: 'http://idp.example.test' }], /token\.issuers\[0\]\.issuer must be an https URL/],
    ['not a URL', [{ ...base, issuer: 'idp' }], /token\.issuers\[0\]\.issuer must be a URL/],
    ['query in jwksUri', [{ ...base, jwksUri: 'https://idp.example.test/jwks?x=1' }], /token\.issuers\[0\]\.jwksUri must have no query/],
    ['alg none', [{ ...base, algorithms: ['none'] }], /token\.issuers\[0\]\.algorithms\[0\] must be one of RS256/],
    ['HS256', [{ ...base, algorithms: ['RS256', 'HS256'] }], /token\.issuers\[0\]\.algorithms\[1\] must be one of/],
    ['empty algorithms', [{ ...base, algorithms: [] }], /token\.issuers\[0\]\.algorithms must be a non-empty array/],
    ['unknown preset', [{ ...base, preset: 'okta-ish' }], /token\.issuers\[0\]\.preset must be one of auth0, keycloak, entra, okta, cognito/],
    ['unknown scope claim', [{ ...base, scopes: ['roles'] }], /token\.issuers\[0\]\.scopes\[0\] must be one of scope, scp, permissions/],
    ['empty roles path', [{ ...base, roles: '' }], /token\.issuers\[0\]\.roles must be a non-empty string/],
    ['unknown key', [{ ...base, claims: {} }], /unknown option token\.issuers\[0\]\.claims/],
    ['cooldown below 1 s', [{ ...base, cooldown: 10 }], /token\.issuers\[0\]\.cooldown must be at least 1000 ms/],
    ['tolerance above 5 min', [{ ...base, clockTolerance: '10m' }], /token\.issuers\[0\]\.clockTolerance must be at most/],
    ['listed twice', [base, { ...base }], /token\.issuers\[1\]\.issuer "[^"]+" is listed twice/],
    ['an entry not an object', [base, 'https://idp.example.test'], /token\.issuers\[1\] must be an object/]
  ]
  for (const [what, issuers, message] of cases) {
    await t.rejects(buildApp({ token: { findUser: () => ({}), issuers } as never }), message, what)
  }
  await t.rejects(buildApp({ token: { findUser: () => ({}), issuer: provider.issuer, secret: SECRET, issuers: [base] } }), /token\.issuers\[0\]\.issuer is token\.issuer/, 'the local issuer')
  for (const option of ['routes', 'refresh', 'revocation'] as const) {
    await t.rejects(buildApp({ token: { findUser: () => ({}), issuers: [base], [option]: true } }), new RegExp(`token\\.${option} needs local signing keys`), `${option} without local keys`)
  }
  await t.rejects(buildApp({ token: { findUser: () => ({}) } }), /token needs token\.secret/, 'still: no keys and no issuers')
  const app = await buildApp({ token: { findUser: () => ({}), issuers: [base] } })
  app.get('/x', { onRequest: app.authGuard(['token']) }, async () => 'x')
  await app.ready()
  t.teardown(() => app.close())
  await t.rejects(app.authTokens.issue({ id: 'a' }), { code: 'FST_MULTIAUTH_NOT_CONFIGURED' }, 'verify-only: issue() is a 500, never a token')
  t.throws(() => app.authGuard({ methods: ['token'], roles: ['admin'] }), /roles need the "roles" option/, 'roles in a guard still need a roles source')
})
