import t from 'tap'
import { MemoryStore } from '../src/index.js'
import { basicHeader } from './helpers/app.js'
import { bearer, login, tokenApp } from './helpers/tokens.js'

/** A MemoryStore that counts reads, to hold verification to one round trip. */
class CountingStore extends MemoryStore {
  reads = 0
  override async get (key: string): Promise<string | null> { this.reads++; return await super.get(key) }
  override async getMany (keys: readonly string[]): Promise<Array<string | null>> { this.reads++; return await super.getMany(keys) }
}

const refresh = async (app: Awaited<ReturnType<typeof tokenApp>>, refreshToken: unknown) =>
  await app.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: refreshToken } })

t.test('refresh yields a new pair; replaying the old refresh token → 400 invalid_grant and the new one is revoked too', async (t) => {
  const app = await tokenApp({ refresh: true, routes: true })
  await app.ready()
  const first = await login(app)
  t.type(first.refresh_token, 'string')

  const rotated = await refresh(app, first.refresh_token)
  t.equal(rotated.statusCode, 200)
  const second = rotated.json()
  t.not(second.refresh_token, first.refresh_token, 'a new refresh token')
  t.not(second.token, first.token, 'a new access token')
  t.equal((await app.inject({ url: '/me', headers: bearer(second.token) })).statusCode, 200, 'the new access token works')

  const replay = await refresh(app, first.refresh_token)
  // RFC 6749 §5.2: a refused grant is 400 invalid_grant (no challenge: the client did not authenticate).
  t.equal(replay.statusCode, 400, 'reuse of the old refresh token is refused')
  t.same(replay.json(), { error: 'invalid_grant', error_description: 'The refresh token is invalid, expired, revoked or was already used' })
  t.equal(replay.headers['www-authenticate'], undefined)
  t.equal(replay.headers['cache-control'], 'no-store', 'RFC 6749 §5.1: token responses are not cached, errors included')
  t.equal(rotated.headers['cache-control'], 'no-store')
  t.equal(rotated.headers.pragma, 'no-cache')
  t.equal((await refresh(app, second.refresh_token)).statusCode, 400, 'the newer refresh token of the same family is revoked too')

  const other = await login(app)
  t.equal((await refresh(app, other.refresh_token)).statusCode, 200, 'another login (another family) is unaffected')
})

t.test('refresh tokens are never access tokens, and access tokens never refresh tokens', async (t) => {
  const app = await tokenApp({ refresh: true, routes: true })
  await app.ready()
  const pair = await login(app)
  const asAccess = await app.inject({ url: '/me', headers: bearer(pair.refresh_token as string) })
  t.equal(asAccess.statusCode, 401)
  t.match(String(asAccess.headers['www-authenticate']), /error="invalid_token"/)
  t.equal((await refresh(app, pair.token)).statusCode, 400, 'an access token is not a refresh token')
  t.equal((await refresh(app, 'made-up')).json().error, 'invalid_grant', 'unknown refresh token')
  const notString = await refresh(app, { a: 1 })
  t.equal(notString.statusCode, 400, 'a non-string is a malformed request')
  t.equal(notString.json().error, 'invalid_request')
  t.equal((await refresh(app, pair.refresh_token)).statusCode, 200, 'the untouched refresh token still works')
})

t.test('refresh for a user that was deleted → 400 invalid_grant', async (t) => {
  let exists = true
  const app = await tokenApp({ refresh: true, routes: true, findUser: async (claims) => exists ? { id: claims.sub } : null })
  await app.ready()
  const pair = await login(app)
  exists = false
  t.equal((await refresh(app, pair.refresh_token)).json().error, 'invalid_grant')
})

t.test('revocation: logout revokes the presented access token; verification does one store read', async (t) => {
  const store = new CountingStore()
  const app = await tokenApp({ revocation: true, routes: true }, { store })
  await app.ready()
  const { token } = await login(app)
  const other = await login(app)
  store.reads = 0
  t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200)
  t.equal(store.reads, 1, 'one store read for a non-revoked token')

  const out = await app.inject({ method: 'POST', url: '/tokens/revoke', headers: bearer(token) })
  t.equal(out.statusCode, 200, 'RFC 7009 §2.2')
  t.equal(out.headers['cache-control'], 'no-store')
  const after = await app.inject({ url: '/me', headers: bearer(token) })
  t.equal(after.statusCode, 401, 'the revoked token is refused')
  t.match(String(after.headers['www-authenticate']), /error="invalid_token"/)
  t.equal((await app.inject({ url: '/me', headers: bearer(other.token) })).statusCode, 200, 'another token of the same user still works')
  t.equal((await app.inject({ method: 'POST', url: '/tokens/revoke', headers: bearer(token) })).statusCode, 401, 'a revoked token cannot log out again')
  const nothing = await app.inject({ method: 'POST', url: '/tokens/revoke' })
  t.equal(nothing.statusCode, 400, 'no token and no Bearer token: nothing to revoke')
  t.equal(nothing.json().error, 'invalid_request')
})

t.test('no store read at all when revocation is off', async (t) => {
  const store = new CountingStore()
  const app = await tokenApp({}, { store })
  await app.ready()
  const { accessToken } = await app.authTokens.issue({ id: 'ann' })
  store.reads = 0
  t.equal((await app.inject({ url: '/me', headers: bearer(accessToken) })).statusCode, 200)
  t.equal(store.reads, 0)
  await t.rejects(app.authTokens.revoke({ jti: 'x', exp: 1 }), /token.revocation/, 'revoke without revocation is a clear error')
})

t.test('log out everywhere revokes every access and refresh token of that user only', async (t) => {
  const app = await tokenApp({ revocation: true, refresh: true, routes: true })
  await app.ready()
  const phone = await login(app, 'ann')
  const laptop = await login(app, 'ann')
  const bob = await login(app, 'bob')
  const res = await app.inject({ method: 'POST', url: '/tokens/revoke', headers: bearer(phone.token), payload: { all: true } })
  t.equal(res.statusCode, 200)
  t.equal((await app.inject({ url: '/me', headers: bearer(laptop.token) })).statusCode, 401, 'the other device\'s access token is revoked')
  t.equal((await refresh(app, laptop.refresh_token)).statusCode, 400, 'and its refresh token')
  t.equal((await app.inject({ url: '/me', headers: bearer(bob.token) })).statusCode, 200, 'another user is untouched')
  t.equal((await refresh(app, bob.refresh_token)).statusCode, 200)
})

t.test('logout with a refresh token revokes its family; unknown refresh tokens are ignored', async (t) => {
  const app = await tokenApp({ refresh: true, routes: true })
  await app.ready()
  const pair = await login(app)
  const rotated = (await refresh(app, pair.refresh_token)).json()
  const res = await app.inject({ method: 'POST', url: '/tokens/revoke', payload: { refresh_token: rotated.refresh_token } })
  t.equal(res.statusCode, 200)
  t.equal((await refresh(app, rotated.refresh_token)).statusCode, 400)
  t.equal((await app.inject({ method: 'POST', url: '/tokens/revoke', payload: { refresh_token: 'unknown' } })).statusCode, 200, 'RFC 7009: unknown tokens are not an error')
  t.equal((await app.inject({ method: 'POST', url: '/tokens/revoke', payload: { all: true } })).statusCode, 401, 'log out everywhere needs an access token')
  const bearerOnly = await app.inject({ method: 'POST', url: '/tokens/revoke', headers: bearer(pair.token) })
  t.equal(bearerOnly.statusCode, 400, 'without revocation, revoking an access token alone is refused, not a silent 200')
  t.same(bearerOnly.json(), { error: 'unsupported_token_type', error_description: 'Access tokens cannot be revoked while token.revocation is off' }, 'RFC 7009 §2.2.1')
  const accessInBody = await app.inject({ method: 'POST', url: '/tokens/revoke', payload: { token: pair.token } })
  t.equal(accessInBody.json().error, 'unsupported_token_type', 'the same for an access token in the body')
})

t.test('POST /tokens: Basic → 200 { token, expiration } in seconds (configurable, default 900); Bearer → 401', async (t) => {
  const oneHour = await tokenApp({ routes: true, expiresIn: '1h' })
  await oneHour.ready()
  const res = await oneHour.inject({ method: 'POST', url: '/tokens/', headers: { authorization: basicHeader('ann', 'pw-ann') } })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['access_token', 'expiration', 'expires_in', 'token', 'token_type'], 'no refresh_token when refresh is off')
  t.equal(body.expiration, 3600)
  t.same([body.access_token, body.token_type, body.expires_in], [body.token, 'Bearer', 3600], 'the same values by their RFC 6749 §5.1 names')
  t.equal(res.headers['cache-control'], 'no-store')
  const claims = JSON.parse(Buffer.from(body.token.split('.')[1], 'base64url').toString())
  t.equal(claims.exp - claims.iat, 3600, 'the token lives as long as `expiration` says')
  const issued = await oneHour.authTokens.issue({ id: 'ann' })
  t.same({ ...issued, accessToken: typeof issued.accessToken }, { accessToken: 'string', tokenType: 'Bearer', expiresIn: 3600 }, 'authTokens.issue() gives the same values in camelCase (expiresIn in seconds, as on the wire)')

  const viaBearer = await oneHour.inject({ method: 'POST', url: '/tokens', headers: bearer(body.token) })
  t.equal(viaBearer.statusCode, 401, 'a token cannot mint a token')
  t.equal(viaBearer.headers['www-authenticate'], 'Basic realm="api", charset="UTF-8"')
  t.equal(viaBearer.headers['cache-control'], 'no-store', 'a refusal of the token route is not cached either')
  const viaBasicToken = await oneHour.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader(body.token, '') } })
  t.equal(viaBasicToken.statusCode, 401, 'nor a token carried as a Basic user-id')
  t.equal((await oneHour.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader('ann', 'wrong') } })).statusCode, 401)

  const defaults = await tokenApp({ routes: true })
  await defaults.ready()
  t.equal((await login(defaults)).expiration, 900, 'default lifetime: 15 minutes')
})

t.test('Basic with <token>: and allowToken → that user, request.auth.method === "token"', async (t) => {
  const app = await tokenApp()
  await app.ready()
  const { accessToken } = await app.authTokens.issue({ id: 'bob' })
  const res = await app.inject({ url: '/me', headers: { authorization: basicHeader(accessToken, '') } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { user: { id: 'bob' }, method: 'token', scopes: ['read'] })
  const bad = await app.inject({ url: '/me', headers: { authorization: basicHeader(accessToken + 'x', '') } })
  t.equal(bad.statusCode, 401, 'a bad token as user-id is refused')
  t.equal((await app.inject({ url: '/me', headers: { authorization: basicHeader('bob', 'pw-bob') } })).json().method, 'basic', 'passwords still work')
})

t.test('the token routes declare response schemas (OpenAPI)', async (t) => {
  const swagger = (await import('@fastify/swagger')).default
  const Fastify = (await import('fastify')).default
  const multiauth = (await import('../src/index.js')).default
  const app = Fastify()
  await app.register(swagger, { openapi: { info: { title: 't', version: '1' } } })
  await app.register(multiauth, {
    basic: { verify: async () => ({ id: 'x' }) },
    token: { secret: 'an-openapi-secret-0123456789-0123456789', findUser: async () => ({ id: 'x' }), refresh: true, revocation: true, routes: true }
  })
  await app.ready()
  const paths = (app.swagger() as unknown as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }).paths
  t.ok(paths['/tokens/']?.post?.responses['200'] ?? paths['/tokens']?.post?.responses['200'], 'POST /tokens documents 200')
  t.ok(paths['/tokens/refresh']?.post?.responses['200'])
  t.ok(paths['/tokens/revoke']?.post?.responses['200'])
  t.match(JSON.stringify(paths['/tokens/refresh']), /refresh_token/)
})
