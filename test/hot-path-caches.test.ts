import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { generateApiKey, hashPassword, MultiauthOptionError } from '../src/index.js'
import type { ApiKeyRecord, BasicCredential, MultiauthUser, TokenOptions } from '../src/index.js'
import { ExpiringLru } from '../src/lib/expiring-lru.js'
import { basicHeader, buildApp, traced } from './helpers/app.js'
import { handMadeJwt, SECRET } from './helpers/tokens.js'

// What issue 8's profiling changed on the hot path: `apiKey.findKey` and `basic.findCredential` (with a
// cache hit) answer without a promise when the application's callback is synchronous, and
// `token.cache` skips the signature check for a token that already passed it. Each must refuse
// exactly what the slow path refuses.

const reply = async (request: FastifyRequest) => ({ user: request.auth?.user ?? null, auth: request.auth })

t.test('apiKey.findKey: a synchronous findKey keeps the guard synchronous; every outcome matches the asynchronous one', async (t) => {
  const live = generateApiKey({ prefix: 'acme', environment: 'live' })
  const revoked = generateApiKey({ prefix: 'acme', environment: 'live' })
  const expired = generateApiKey({ prefix: 'acme', environment: 'live' })
  const unknown = generateApiKey({ prefix: 'acme', environment: 'live' })
  const records = new Map<string, ApiKeyRecord<MultiauthUser>>([
    [live.id, { user: { id: 'ann' }, hash: live.hash, scopes: ['read'] }],
    [revoked.id, { user: { id: 'bob' }, hash: revoked.hash, revoked: true }],
    [expired.id, { user: { id: 'cy' }, hash: expired.hash, expiresAt: 1 }]
  ])
  const apps: Record<'sync' | 'async', FastifyInstance> = {} as never
  for (const kind of ['sync', 'async'] as const) {
    const app = await buildApp({
      apiKey: {
        findKey: (id) => {
          if (id === 'crash') throw new Error('db down')
          const record = records.get(id)
          return kind === 'sync' ? record : Promise.resolve(record)
        }
      }
    })
    app.get('/', { onRequest: traced(app.authGuard(['apiKey'])) }, reply)
    await app.ready()
    t.teardown(() => app.close())
    apps[kind] = app
  }
  const cases = [
    { name: 'live key', key: live.key, status: 200 },
    { name: 'revoked key', key: revoked.key, status: 401 },
    { name: 'expired key', key: expired.key, status: 401 },
    { name: 'unknown key', key: unknown.key, status: 401 },
    { name: 'live id, wrong secret', key: live.key.slice(0, -8) + unknown.key.slice(-8), status: 401 },
    { name: 'not our format', key: 'hello', status: 401 }
  ]
  for (const { name, key, status } of cases) {
    const sync = await apps.sync.inject({ url: '/', headers: { 'x-api-key': key } })
    const async = await apps.async.inject({ url: '/', headers: { 'x-api-key': key } })
    t.equal(sync.statusCode, status, `${name}: ${status} (sync findKey)`)
    t.equal(async.statusCode, status, `${name}: ${status} (async findKey)`)
    t.equal(sync.body, async.body, `${name}: same body`)
    t.equal(sync.headers['www-authenticate'], async.headers['www-authenticate'], `${name}: same challenge`)
  }
  const ok = await apps.sync.inject({ url: '/', headers: { 'x-api-key': live.key } })
  // With findKey the keyed limiter always exists (a record's own rateLimit is counted); for a record
  // without one it must not cost a promise. Failed on the first 1.0 src (the limiter was an async function).
  t.equal(ok.headers['x-guard-sync'], 'yes', 'sync findKey: done() called before the guard returned')
  t.match(ok.json().auth, { method: 'apiKey', keyId: live.id, scopes: ['read'], user: { id: 'ann' } }, 'request.auth from the record')
  const okAsync = await apps.async.inject({ url: '/', headers: { 'x-api-key': live.key } })
  t.equal(okAsync.headers['x-guard-sync'], 'no', 'async findKey: the promise path')
})

t.test('apiKey.findKey: a synchronous findKey that throws is a 500, as an asynchronous one is', async (t) => {
  const key = generateApiKey({ prefix: 'acme', environment: 'live' })
  for (const kind of ['sync', 'async'] as const) {
    const app = await buildApp({
      apiKey: { findKey: () => { if (kind === 'sync') throw new Error('db down'); return Promise.reject(new Error('db down')) } }
    })
    app.get('/', { onRequest: app.authGuard(['apiKey']) }, reply)
    const res = await app.inject({ url: '/', headers: { 'x-api-key': key.key } })
    t.equal(res.statusCode, 500, `${kind}: 500`)
    t.equal(res.json().code, 'FST_MULTIAUTH_CALLBACK_ERROR', `${kind}: generic callback error`)
    t.notMatch(res.body, /db down/, `${kind}: the cause is not sent`)
    await app.close()
  }
})

t.test('basic.findCredential + cache: a cache hit with a synchronous findCredential needs no promise; a miss or a wrong password still runs argon2', async (t) => {
  const users = new Map<string, BasicCredential>([['alice', { user: { id: 'alice' }, passwordHash: await hashPassword('correct horse') }]])
  const app = await buildApp({ basic: { findCredential: (name) => users.get(name), cache: { max: 10, ttl: 60_000 } } })
  app.get('/', { onRequest: traced(app.authGuard(['basic'])) }, reply)
  await app.ready()
  t.teardown(() => app.close())
  const first = await app.inject({ url: '/', headers: { authorization: basicHeader('alice', 'correct horse') } })
  t.equal(first.statusCode, 200)
  t.equal(first.headers['x-guard-sync'], 'no', 'first login: argon2 (a promise)')
  const second = await app.inject({ url: '/', headers: { authorization: basicHeader('alice', 'correct horse') } })
  t.equal(second.statusCode, 200)
  t.equal(second.headers['x-guard-sync'], 'yes', 'repeated login: served from the cache without a promise')
  t.same(second.json().user, { id: 'alice' })
  const wrong = await app.inject({ url: '/', headers: { authorization: basicHeader('alice', 'correct horsf') } })
  t.equal(wrong.statusCode, 401, 'a wrong password after a cached login is refused')
  t.equal(wrong.headers['x-guard-sync'], 'no', 'and it went through argon2')
  const unknown = await app.inject({ url: '/', headers: { authorization: basicHeader('mallory', 'correct horse') } })
  t.equal(unknown.statusCode, 401, 'an unknown user is refused')
  t.equal(unknown.headers['x-guard-sync'], 'no', 'after the dummy argon2 run')
  // The hash changed (password changed elsewhere): the cached login no longer counts.
  users.set('alice', { user: { id: 'alice' }, passwordHash: await hashPassword('new password') })
  const stale = await app.inject({ url: '/', headers: { authorization: basicHeader('alice', 'correct horse') } })
  t.equal(stale.statusCode, 401, 'the old password stops working when findCredential returns a new hash')
})

t.test('token.cache: options are checked at registration', async (t) => {
  const base = { secret: SECRET, findUser: () => ({ id: 'ann' }) }
  for (const [cache, message] of [
    ['yes', /token\.cache must be an object \(\{ max, ttl \}\), or false/],
    [true, /token\.cache must be an object/],
    [null, /token\.cache must be an object/],
    [{ max: 0 }, /token\.cache\.max/],
    // ttl is a Duration: nothing below 1 ms, nothing unreadable.
    [{ ttl: 0 }, /token\.cache\.ttl/],
    [{ ttl: 'a while' }, /token\.cache\.ttl/],
    [{ size: 10 }, /token\.cache.*size/]
  ] as const) {
    await t.rejects(buildApp({ token: { ...base, cache } as unknown as TokenOptions }), MultiauthOptionError, `cache ${JSON.stringify(cache)}`)
    await t.rejects(buildApp({ token: { ...base, cache } as unknown as TokenOptions }), { message }, `cache ${JSON.stringify(cache)}: says what is wrong`)
  }
})

async function tokenCacheApp (t: Test, token: Partial<TokenOptions>, users: Set<string>): Promise<FastifyInstance> {
  const app = await buildApp({
    token: { secret: SECRET, findUser: (claims) => users.has(claims.sub) ? { id: claims.sub } : null, revocation: true, ...token }
  })
  const claimsOf = (request: FastifyRequest): unknown => request.auth?.method === 'token' ? request.auth.claims : undefined
  app.get('/', { onRequest: app.authGuard(['token']) }, async (request) => ({
    frozen: Object.isFrozen(claimsOf(request)),
    claims: claimsOf(request)
  }))
  const seen: unknown[] = []
  app.get('/identity', { onRequest: app.authGuard(['token']) }, async (request) => {
    seen.push(claimsOf(request))
    return { sameAsFirst: seen[0] === seen[seen.length - 1] }
  })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

t.test('token.cache: a cached token skips the signature check, but revocation, "log out everywhere" and findUser still run on every request', async (t) => {
  const users = new Set(['ann', 'bob', 'cy'])
  const app = await tokenCacheApp(t, { cache: { max: 100, ttl: 60_000 } }, users)
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
  const ann = (await app.authTokens.issue({ id: 'ann' })).accessToken

  const first = await app.inject({ url: '/identity', headers: bearer(ann) })
  const second = await app.inject({ url: '/identity', headers: bearer(ann) })
  t.equal(first.statusCode, 200)
  t.same(second.json(), { sameAsFirst: true }, 'the second request got the claims verified by the first (a cache hit)')
  const plain = await app.inject({ url: '/', headers: bearer(ann) })
  t.equal(plain.json().frozen, true, 'cached claims are frozen: no request can change what another one sees')

  // Same header and payload, another signature: a different string, so a miss, and refused.
  const [h, p] = ann.split('.') as [string, string]
  const forged = `${h}.${p}.${handMadeJwt({}, {}, 'another-secret-of-at-least-32-bytes!').split('.')[2] as string}`
  t.equal((await app.inject({ url: '/', headers: bearer(forged) })).statusCode, 401, 'a token with a forged signature is refused after the real one was cached')

  // Revocation is checked after the cache.
  const claims = plain.json().claims
  await app.authTokens.revoke(claims)
  t.equal((await app.inject({ url: '/', headers: bearer(ann) })).statusCode, 401, 'a revoked token is refused although it is cached')

  const bob = (await app.authTokens.issue({ id: 'bob' })).accessToken
  t.equal((await app.inject({ url: '/', headers: bearer(bob) })).statusCode, 200)
  // revokeAll stores whole seconds: a token issued in the same second as the call is cut off too.
  await app.authTokens.revokeAll('bob')
  t.equal((await app.inject({ url: '/', headers: bearer(bob) })).statusCode, 401, '"log out everywhere" reaches a cached token')

  const cy = (await app.authTokens.issue({ id: 'cy' })).accessToken
  t.equal((await app.inject({ url: '/', headers: bearer(cy) })).statusCode, 200)
  users.delete('cy')
  t.equal((await app.inject({ url: '/', headers: bearer(cy) })).statusCode, 401, 'findUser runs for a cached token: a deleted user is refused')
})

t.test('token.cache: an entry never outlives the token (exp + clock tolerance) (pinned clock)', async (t) => {
  // Date.now pinned before the app exists, so issuing, verifying and the cache's own clock
  // (captured at construction) all read it: no sleeping across a second boundary.
  const realNow = Date.now
  let now = 1_900_000_000_000 // the start of a whole second
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  const users = new Set(['ann'])
  const app = await tokenCacheApp(t, { cache: { ttl: 60_000 }, expiresIn: '1s', clockTolerance: 0, revocation: false }, users)
  const { accessToken: token } = await app.authTokens.issue({ id: 'ann' })
  const exp = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).exp as number
  t.equal(exp, 1_900_000_001, 'exp = iat + 1 s')
  t.equal((await app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'accepted (and cached) while valid')
  now = exp * 1000 - 1
  t.equal((await app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'still accepted 1 ms before exp')
  now = exp * 1000 + 1
  const late = await app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })
  t.equal(late.statusCode, 401, 'refused once expired, although the cache TTL is a minute')
  t.match(late.headers['www-authenticate'], /error="invalid_token"/)
})

t.test('token.cache on by default: the second request gets the claims the first verified, frozen; revocation still refuses it', async (t) => {
  const app = await tokenCacheApp(t, {}, new Set(['ann']))
  const { accessToken: token } = await app.authTokens.issue({ id: 'ann' })
  await app.inject({ url: '/identity', headers: { authorization: `Bearer ${token}` } })
  const second = await app.inject({ url: '/identity', headers: { authorization: `Bearer ${token}` } })
  t.same(second.json(), { sameAsFirst: true }, 'a cache hit without any cache option')
  const plain = await app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })
  t.equal(plain.json().frozen, true, 'shared claims are frozen')
  await app.authTokens.revoke(plain.json().claims)
  t.equal((await app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })).statusCode, 401, 'a revoked token is refused although it is cached')
})

t.test('token.cache: false turns it off: every request verifies the signature and gets its own claims', async (t) => {
  const app = await tokenCacheApp(t, { cache: false }, new Set(['ann']))
  const { accessToken: token } = await app.authTokens.issue({ id: 'ann' })
  await app.inject({ url: '/identity', headers: { authorization: `Bearer ${token}` } })
  const second = await app.inject({ url: '/identity', headers: { authorization: `Bearer ${token}` } })
  t.same(second.json(), { sameAsFirst: false }, 'no shared claims object')
  t.equal((await app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })).json().frozen, false, 'claims are not frozen')
})

t.test('ExpiringLru: bounded, least recently used out first, expired entries never returned', async (t) => {
  let now = 1000
  const lru = new ExpiringLru<string>(2, () => now)
  lru.set('a', 'A', 2000)
  lru.set('b', 'B', 2000)
  t.equal(lru.get('a'), 'A', 'a is now the most recently used')
  lru.set('c', 'C', 2000)
  t.equal(lru.size, 2, 'never more than max')
  t.equal(lru.get('b'), undefined, 'b, the least recently used, was dropped')
  t.equal(lru.get('a'), 'A')
  t.equal(lru.get('c'), 'C')
  now = 2000
  t.equal(lru.get('a'), undefined, 'expired at its deadline')
  t.equal(lru.size, 1, 'and dropped when seen')
  lru.set('d', 'x', 5000)
  lru.set('e', 'x', 5000)
  t.equal(lru.deleteWhere((v) => v === 'x'), 2, 'deleteWhere counts what it drops')
  t.equal(lru.size, 0)
})
