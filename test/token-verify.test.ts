import t from 'tap'
import type { Test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import fastifyJwt from '@fastify/jwt'
import Fastify from 'fastify'
import { MultiauthOptionError } from '../src/index.js'
import { buildApp } from './helpers/app.js'
import { bearer, claimsFor, handMadeJwt, rsaPair, SECRET, tokenApp } from './helpers/tokens.js'

// One constant challenge for every refusal: it cannot tell an attacker why a token failed.
const INVALID = 'Bearer realm="api", error="invalid_token", error_description="The access token is invalid, expired or revoked"'

/** Signs with the app's own key, through the plugin's helper. */
async function issued (app: Awaited<ReturnType<typeof tokenApp>>, user = 'ann'): Promise<string> {
  return (await app.authTokens.issue({ id: user })).accessToken
}

async function expectInvalid (t: Test, app: Awaited<ReturnType<typeof tokenApp>>, token: string, what: string): Promise<void> {
  const res = await app.inject({ url: '/write', headers: bearer(token) })
  t.equal(res.statusCode, 401, `${what} → 401`)
  t.equal(res.headers['www-authenticate'], INVALID, `${what} → invalid_token, same description as any other refusal`)
  t.same(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'statusCode'], 'the body says nothing more')
  t.equal(res.json().message, 'Invalid credentials')
}

t.test('a valid token admits, with scopes from the scope claim; missing scope → 403 insufficient_scope', async (t) => {
  const app = await tokenApp()
  await app.ready()
  const me = await app.inject({ url: '/me', headers: bearer(await issued(app, 'ann')) })
  t.equal(me.statusCode, 200)
  t.same(me.json(), { user: { id: 'ann' }, method: 'token', scopes: ['read', 'write'] })
  t.equal((await app.inject({ url: '/write', headers: bearer(await issued(app, 'ann')) })).statusCode, 200)
  const bob = await app.inject({ url: '/write', headers: bearer(await issued(app, 'bob')) })
  t.equal(bob.statusCode, 403)
  t.equal(bob.headers['www-authenticate'], 'Bearer realm="api", error="insufficient_scope"')
})

t.test('missing token → 401 with a bare Bearer challenge', async (t) => {
  const app = await tokenApp()
  await app.ready()
  const res = await app.inject({ url: '/write' })
  t.equal(res.statusCode, 401)
  t.equal(res.headers['www-authenticate'], 'Bearer realm="api"')
})

t.test('attacks and bad tokens → 401 invalid_token', async (t) => {
  const app = await tokenApp({ issuer: 'https://issuer.test', audience: 'api.test' })
  await app.ready()
  const good = claimsFor('ann', { scope: 'write', iss: 'https://issuer.test', aud: 'api.test' })
  const hs = { alg: 'HS256', typ: 'at+jwt' }

  t.equal((await app.inject({ url: '/write', headers: bearer(handMadeJwt(hs, good, SECRET)) })).statusCode, 200, 'control: the hand-made token with the right key passes')
  await expectInvalid(t, app, handMadeJwt({ alg: 'none', typ: 'at+jwt' }, good), 'alg none')
  await expectInvalid(t, app, handMadeJwt({ alg: 'none', typ: 'at+jwt' }, good).slice(0, -1), 'alg none without the trailing dot')

  const valid = await issued(app)
  const [h, p, s] = valid.split('.') as [string, string, string]
  const tampered = JSON.parse(Buffer.from(p, 'base64url').toString())
  tampered.sub = 'bob'
  await expectInvalid(t, app, `${h}.${Buffer.from(JSON.stringify(tampered)).toString('base64url')}.${s}`, 'tampered payload')

  await expectInvalid(t, app, handMadeJwt(hs, { ...good, exp: Math.floor(Date.now() / 1000) - 3600 }, SECRET), 'expired token')
  await expectInvalid(t, app, handMadeJwt(hs, { ...good, nbf: Math.floor(Date.now() / 1000) + 3600 }, SECRET), 'not-yet-valid token')
  await expectInvalid(t, app, handMadeJwt(hs, { ...good, iss: 'https://evil.test' }, SECRET), 'another issuer')
  await expectInvalid(t, app, handMadeJwt(hs, { ...good, aud: 'other.test' }, SECRET), 'another audience')
  const { iss: _iss, ...noIss } = good
  await expectInvalid(t, app, handMadeJwt(hs, noIss, SECRET), 'no issuer while one is configured')
  await expectInvalid(t, app, handMadeJwt({ alg: 'HS256', typ: 'JWT' }, good, SECRET), 'a JWT that is not typed as an access token')
  await expectInvalid(t, app, handMadeJwt(hs, good, 'another-secret-of-thirty-two-bytes!'), 'another secret')
  await expectInvalid(t, app, 'not.a.jwt', 'malformed token')
  await expectInvalid(t, app, 'garbage', 'not a JWT at all')
  await expectInvalid(t, app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', crit: ['exp'] }, good, SECRET), 'unknown crit header')
})

t.test('RS256: a token HMAC-signed with the public key as secret → 401 (no HS/RS confusion)', async (t) => {
  const pair = rsaPair()
  const app = await tokenApp({ secret: undefined, ...pair })
  await app.ready()
  t.equal((await app.inject({ url: '/write', headers: bearer(await issued(app)) })).statusCode, 200, 'control: RS256 token passes')
  const confused = handMadeJwt({ alg: 'HS256', typ: 'at+jwt' }, claimsFor('ann', { scope: 'write' }), pair.publicKey)
  await expectInvalid(t, app, confused, 'HS256 signed with the RSA public key')
  const header = JSON.parse(Buffer.from((await issued(app)).split('.')[0] as string, 'base64url').toString())
  t.same(header, { alg: 'RS256', typ: 'at+jwt' }, 'the algorithm is pinned from the key type')
})

t.test('ES256 and EdDSA key pairs sign and verify; the algorithm follows the key', async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const ed = generateKeyPairSync('ed25519')
  for (const [pair, alg] of [[ec, 'ES256'], [ed, 'EdDSA']] as const) {
    const app = await tokenApp({ secret: undefined, publicKey: pair.publicKey, privateKey: pair.privateKey })
    await app.ready()
    const token = await issued(app)
    t.equal(JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()).alg, alg)
    t.equal((await app.inject({ url: '/write', headers: bearer(token) })).statusCode, 200, `${alg} token passes`)
    await app.close()
  }
})

t.test('rolling keys: an old key still listed verifies; once removed, its tokens fail', async (t) => {
  const oldKey = { kid: 'old', secret: 'old-secret-0123456789-0123456789-xx' }
  const newKey = { kid: 'new', secret: 'new-secret-0123456789-0123456789-yy' }
  const before = await tokenApp({ secret: undefined, keys: [oldKey] })
  await before.ready()
  const oldToken = await issued(before)
  t.equal(JSON.parse(Buffer.from(oldToken.split('.')[0] as string, 'base64url').toString()).kid, 'old')

  const during = await tokenApp({ secret: undefined, keys: [newKey, oldKey] })
  await during.ready()
  t.equal((await during.inject({ url: '/write', headers: bearer(oldToken) })).statusCode, 200, 'old token passes while the old key is listed')
  const newToken = await issued(during)
  t.equal(JSON.parse(Buffer.from(newToken.split('.')[0] as string, 'base64url').toString()).kid, 'new', 'the first key signs')
  t.equal((await during.inject({ url: '/write', headers: bearer(newToken) })).statusCode, 200)
  await expectInvalid(t, during, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid: 'nope' }, claimsFor('ann'), newKey.secret), 'unknown kid')
  await expectInvalid(t, during, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid: 'old' }, claimsFor('ann'), newKey.secret), 'kid of one key, signed by another')

  const after = await tokenApp({ secret: undefined, keys: [newKey] })
  await after.ready()
  await expectInvalid(t, after, oldToken, 'old token after its key was removed')
  t.equal((await after.inject({ url: '/write', headers: bearer(newToken) })).statusCode, 200, 'new token still passes')
})

t.test('findUser: a deleted user → 401; findUser receives the claims', async (t) => {
  let seen: Record<string, unknown> | undefined
  const app = await tokenApp({ findUser: async (claims) => { seen = claims; return claims.sub === 'ann' ? { id: 'ann' } : null } })
  await app.ready()
  t.equal((await app.inject({ url: '/me', headers: bearer(await issued(app, 'ann')) })).statusCode, 200)
  t.equal(seen?.sub, 'ann')
  t.type(seen?.jti, 'string')
  const gone = await app.inject({ url: '/me', headers: bearer(await issued(app, 'bob')) })
  t.equal(gone.statusCode, 401)
  t.match(String(gone.headers['www-authenticate']), /error="invalid_token"/)
})

t.test('a findUser that throws is a 500, never a 401 or a pass', async (t) => {
  const app = await tokenApp({ findUser: async () => { throw new Error('database down') } })
  await app.ready()
  const res = await app.inject({ url: '/me', headers: bearer(await issued(app)) })
  t.equal(res.statusCode, 500)
})

t.test('tokens in the query string are refused; malformed bearer headers are 400', async (t) => {
  const app = await tokenApp()
  await app.ready()
  const token = await issued(app)
  const res = await app.inject({ url: `/write?access_token=${token}` })
  t.equal(res.statusCode, 400)
  t.match(res.json().message, /query string/)
  t.equal((await app.inject({ url: '/write', headers: { authorization: 'Bearer' } })).statusCode, 400, 'scheme without a token')
  t.equal((await app.inject({ url: '/write', headers: { authorization: `Bearer ${'a'.repeat(9000)}` } })).statusCode, 400, 'over the size limit')
  const lower = await app.inject({ url: '/write', headers: { authorization: `bearer ${token}` } })
  t.equal(lower.statusCode, 200, 'the scheme is case-insensitive (RFC 7235)')
})

t.test('registration errors', async (t) => {
  const findUser = async (): Promise<null> => null
  const register = async (token: unknown): Promise<unknown> => await buildApp({ token: token as never }).then(async (app) => await app.ready())
  await t.rejects(register({ secret: 'sixteen-bytes-!!', findUser }), { message: /at least 32 bytes \(256 bits\).*got 16/ }, 'a 16-byte secret names the minimum')
  await t.rejects(register({ secret: Buffer.alloc(16), findUser }), MultiauthOptionError)
  await t.rejects(register({ secret: rsaPair().publicKey, findUser }), { message: /is a PEM block, not a shared secret/ }, 'a public key as HMAC secret')
  await t.rejects(register({ findUser }), { message: /token needs token.secret/ })
  await t.rejects(register({ secret: SECRET }), { message: /token.findUser must be a function/ })
  const a = rsaPair()
  const b = rsaPair()
  await t.rejects(register({ publicKey: a.publicKey, privateKey: b.privateKey, findUser }), { message: /not the same pair/ })
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 })
  await t.rejects(register({ publicKey: small.publicKey, findUser }), { message: /at least 2048 bits/ })
  await t.rejects(register({ keys: [{ kid: 'a', secret: SECRET }, { secret: SECRET }], findUser }), { message: /keys\[1\].kid is required/ })
  await t.rejects(register({ keys: [{ kid: 'a', secret: SECRET }, { kid: 'a', secret: SECRET }], findUser }), { message: /used twice/ })
  await t.rejects(register({ secret: SECRET, keys: [{ secret: SECRET }], findUser }), { message: /replaces/ })
  await t.rejects(register({ secret: SECRET, findUser, expiresIn: 0 }), { message: /token.expiresIn/ })
  // Milliseconds now: a number that is not whole seconds is almost certainly 0.x seconds, and is refused with the string to write.
  await t.rejects(register({ secret: SECRET, findUser, expiresIn: 3600 }), { message: /token.expiresIn is in milliseconds and must be whole seconds .*'3600s'/ })
  await t.rejects(register({ secret: SECRET, findUser, routes: true }), { message: /password-based method/ }, 'routes without basic/session')
  await t.rejects(register({ secret: SECRET, findUser, bogus: 1 }), { message: /unknown option token.bogus/ })
  await t.rejects(register({ keys: [{ kid: 'v', publicKey: a.publicKey }], findUser, routes: true }), { message: /signing key/ })
})

t.test('a verify-only key (public key alone) verifies tokens signed elsewhere but cannot issue', async (t) => {
  const pair = rsaPair()
  const signer = await tokenApp({ secret: undefined, ...pair })
  await signer.ready()
  const verifier = await tokenApp({ secret: undefined, publicKey: pair.publicKey })
  await verifier.ready()
  t.equal((await verifier.inject({ url: '/write', headers: bearer(await issued(signer)) })).statusCode, 200)
  await t.rejects(verifier.authTokens.issue({ id: 'ann' }), /cannot be issued/)
})

t.test('coexists with the application\'s own @fastify/jwt, registered before or after', async (t) => {
  for (const order of ['before', 'after'] as const) {
    const app = Fastify()
    const own = { secret: 'the-applications-own-secret-0123456789', decoratorName: order === 'after' ? 'jwtPayload' : 'user' }
    if (order === 'before') await app.register(fastifyJwt, own)
    await app.register((await import('../src/index.js')).default, {
      token: { secret: SECRET, findUser: async (claims) => ({ id: claims.sub }) }
    })
    if (order === 'after') await app.register(fastifyJwt, own)
    // request.auth.user is what our guard admitted; request.user (typed by @fastify/jwt here) is still set to it at runtime.
    app.get('/ours', { onRequest: app.authGuard(['token']) }, async (request) => ({ auth: request.auth?.user ?? null, user: request.user }))
    app.get('/theirs', async (request) => await request.jwtVerify())
    await app.ready()
    const ours = (await app.authTokens.issue({ id: 'ann' })).accessToken
    const theirs = app.jwt.sign({ sub: 'zed' })
    t.same((await app.inject({ url: '/ours', headers: bearer(ours) })).json(), { auth: { id: 'ann' }, user: { id: 'ann' } }, `${order}: our tokens pass our guard`)
    t.equal((await app.inject({ url: '/ours', headers: bearer(theirs) })).statusCode, 401, `${order}: the app's tokens do not pass our guard`)
    t.equal((await app.inject({ url: '/theirs', headers: bearer(theirs) })).json().sub, 'zed', `${order}: the app's @fastify/jwt still works`)
    t.equal((await app.inject({ url: '/theirs', headers: bearer(ours) })).statusCode, 401, `${order}: our tokens do not pass the app's jwtVerify`)
    t.notOk('multiauth0' in (app.jwt as object), `${order}: nothing of ours was added to app.jwt`)
    await app.close()
  }
})

t.test('revokeAll called exactly on a whole second still refuses a token issued in that second', async (t) => {
  const app = await tokenApp({ revocation: true })
  t.teardown(() => app.close())
  const realNow = Date.now
  const onTheSecond = Math.floor(realNow() / 1000) * 1000
  Date.now = () => onTheSecond
  t.teardown(() => { Date.now = realNow })
  const { accessToken } = await app.authTokens.issue({ id: 'ann' })
  t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${accessToken}` } })).statusCode, 200, 'valid before')
  await app.authTokens.revokeAll('ann')
  t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${accessToken}` } })).statusCode, 401, 'refused after, although iat equals the revocation second')
})

t.test('several keys: the kid picks the key; a header that cannot be read, or names no key, → 401 invalid_token', async (t) => {
  const other = 'another-secret-of-at-least-32-bytes-long!!'
  const app = await tokenApp({ secret: undefined, keys: [{ kid: 'new', secret: SECRET }, { kid: 'old', secret: other }] })
  await app.ready()
  const good = claimsFor('ann', { scope: 'write' })
  const signed = (header: Record<string, unknown>, secret = SECRET): string => handMadeJwt({ alg: 'HS256', typ: 'at+jwt', ...header }, good, secret)
  t.equal((await app.inject({ url: '/write', headers: bearer(await issued(app)) })).statusCode, 200, 'a token the app issued (kid "new")')
  t.equal((await app.inject({ url: '/write', headers: bearer(signed({ kid: 'old' }, other)) })).statusCode, 200, 'a token under the older key')
  await expectInvalid(t, app, signed({ kid: 'old' }), 'kid "old" with the new key\'s signature')
  await expectInvalid(t, app, signed({ kid: 'nope' }), 'an unknown kid')
  await expectInvalid(t, app, signed({}), 'no kid')
  await expectInvalid(t, app, signed({ kid: 7 }), 'a kid that is not a string')
  const [, payload, signature] = signed({ kid: 'new' }).split('.') as [string, string, string]
  for (const [header, what] of [
    ['', 'an empty header segment'],
    ['bnVsbA', 'a header that is JSON null'],
    ['eyJraWQiOiJuZXci', 'a header that is cut-off JSON'],
    [Buffer.from('"new"').toString('base64url'), 'a header that is a JSON string']
  ] as const) {
    await expectInvalid(t, app, `${header}.${payload}.${signature}`, what)
  }
  await expectInvalid(t, app, 'no-dots-at-all', 'no dot')
})
