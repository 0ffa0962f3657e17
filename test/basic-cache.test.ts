import { createHash } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import argon2 from 'argon2'
import { hashPassword, MultiauthOptionError } from '../src/index.js'
import type { BasicCredential } from '../src/index.js'
import { VerifiedCredentialCache } from '../src/methods/basic/credential-cache.js'
import { basicHeader, buildApp } from './helpers/app.js'

// Counts real argon2 verifications (calls through to the real argon2), so a test can tell
// a cache hit from an argon2 run without timing anything.
function countArgon2 (t: Test): { count: () => number } {
  const real = argon2.verify
  let calls = 0
  argon2.verify = (async (...args: Parameters<typeof real>) => { calls++; return await real(...args) }) as typeof real
  t.teardown(() => { argon2.verify = real })
  return { count: () => calls }
}

const users = new Map<string, BasicCredential>()
t.before(async () => {
  users.set('alice', { user: { id: 'alice' }, passwordHash: await hashPassword('correct horse') })
  users.set('bob', { user: { id: 'bob' }, passwordHash: await hashPassword('battery staple') })
})

async function app (cache: Record<string, unknown> | undefined): Promise<FastifyInstance> {
  const app = await buildApp({ basic: { findCredential: (name) => users.get(name), ...(cache === undefined ? {} : { cache }) } })
  app.get('/', { onRequest: app.authGuard(['basic']) }, async (request) => ({ user: request.auth?.user ?? null }))
  await app.ready()
  return app
}

t.test('off by default: every login runs argon2', async (t) => {
  const argon = countArgon2(t)
  const server = await app(undefined)
  t.teardown(() => server.close())
  for (let i = 0; i < 3; i++) {
    const res = await server.inject({ url: '/', headers: { authorization: basicHeader('alice', 'correct horse') } })
    t.equal(res.statusCode, 200)
  }
  t.equal(argon.count(), 3)
})

t.test('a repeated correct login is served from the cache', async (t) => {
  const argon = countArgon2(t)
  const server = await app({ max: 10, ttl: 60_000 })
  t.teardown(() => server.close())
  for (let i = 0; i < 3; i++) {
    const res = await server.inject({ url: '/', headers: { authorization: basicHeader('alice', 'correct horse') } })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { user: { id: 'alice' } })
  }
  t.equal(argon.count(), 1, 'one argon2 run, then hits')
})

t.test('a wrong password is never cached as success', async (t) => {
  const argon = countArgon2(t)
  const server = await app({ max: 10, ttl: 60_000 })
  t.teardown(() => server.close())
  for (let i = 0; i < 3; i++) {
    const res = await server.inject({ url: '/', headers: { authorization: basicHeader('alice', 'wrong') } })
    t.equal(res.statusCode, 401)
  }
  t.equal(argon.count(), 3, 'every wrong password costs argon2')
  // A correct login cached for alice does not admit a wrong password either.
  t.equal((await server.inject({ url: '/', headers: { authorization: basicHeader('alice', 'correct horse') } })).statusCode, 200)
  t.equal((await server.inject({ url: '/', headers: { authorization: basicHeader('alice', 'correct hors') } })).statusCode, 401)
  t.equal((await server.inject({ url: '/', headers: { authorization: basicHeader('bob', 'correct horse') } })).statusCode, 401)
})

t.test('a changed stored hash is not served from the cache', async (t) => {
  const server = await app({ max: 10, ttl: 60_000 })
  t.teardown(() => server.close())
  const before = users.get('bob') as BasicCredential
  t.teardown(() => { users.set('bob', before) })
  t.equal((await server.inject({ url: '/', headers: { authorization: basicHeader('bob', 'battery staple') } })).statusCode, 200)
  users.set('bob', { user: { id: 'bob' }, passwordHash: await hashPassword('new password') })
  t.equal((await server.inject({ url: '/', headers: { authorization: basicHeader('bob', 'battery staple') } })).statusCode, 401)
  t.equal((await server.inject({ url: '/', headers: { authorization: basicHeader('bob', 'new password') } })).statusCode, 200)
})

t.test('app.authCache.clear drops a user\'s entries, from a child instance too', async (t) => {
  const argon = countArgon2(t)
  const server = await app({ max: 10, ttl: 60_000 })
  t.teardown(() => server.close())
  const alice = { authorization: basicHeader('alice', 'correct horse') }
  const bob = { authorization: basicHeader('bob', 'battery staple') }
  await server.inject({ url: '/', headers: alice })
  await server.inject({ url: '/', headers: bob })
  t.equal(argon.count(), 2)
  let child: FastifyInstance | undefined
  // Any encapsulated child sees the cache too (it is a decorator).
  const other = await buildApp({ basic: { findCredential: (name) => users.get(name), cache: {} } })
  t.teardown(() => other.close())
  other.register(async (c) => { child = c })
  await other.ready()
  t.equal((child as FastifyInstance).authCache.clear('alice'), 0, 'another instance has its own cache')
  t.equal(server.authCache.clear('alice'), 1)
  await server.inject({ url: '/', headers: alice })
  await server.inject({ url: '/', headers: bob })
  t.equal(argon.count(), 3, 'alice verified again, bob still cached')
  const plain = await app(undefined)
  t.teardown(() => plain.close())
  t.equal(plain.authCache.clear('alice'), 0, 'no cache: a no-op')
})

t.test('options are checked at registration', async (t) => {
  const findCredential = (): undefined => undefined
  await t.rejects(buildApp({ basic: { findCredential, cache: { max: 0 } } }), MultiauthOptionError)
  // ttl is a Duration (ms or a string): nothing below 1 ms, nothing unreadable.
  await t.rejects(buildApp({ basic: { findCredential, cache: { ttl: 0 } } }), /basic\.cache\.ttl/)
  await t.rejects(buildApp({ basic: { findCredential, cache: { ttl: 'a while' } } }), /basic\.cache\.ttl/)
  await t.rejects(buildApp({ basic: { findCredential, cache: { size: 3 } as never } }), /basic\.cache\.size/)
  await t.rejects(buildApp({ basic: { findCredential, cache: true as never } }), /basic\.cache must be an object/)
  await t.rejects(buildApp({ basic: { verify: () => null, cache: {} } }), /only applies with basic\.findCredential/)
})

t.test('cache: TTL with a fake clock', async (t) => {
  let now = 1_000
  const cache = new VerifiedCredentialCache(10, 500, () => now)
  const key = cache.key('alice', 'pw')
  cache.add(key, 'alice', 'hash1')
  t.equal(cache.has(key, 'hash1'), true)
  now += 499
  t.equal(cache.has(key, 'hash1'), true, 'valid until the TTL')
  now += 1
  t.equal(cache.has(key, 'hash1'), false, 'expired at the TTL')
  t.equal(cache.size, 0, 'an expired entry is dropped')
})

t.test('cache: bounded LRU', async (t) => {
  const cache = new VerifiedCredentialCache(2, 60_000, () => 0)
  const a = cache.key('a', 'pw')
  const b = cache.key('b', 'pw')
  const c = cache.key('c', 'pw')
  cache.add(a, 'a', 'h')
  cache.add(b, 'b', 'h')
  t.equal(cache.has(a, 'h'), true, 'touch a: b is now the least recently used')
  cache.add(c, 'c', 'h')
  t.equal(cache.size, 2)
  t.equal(cache.has(b, 'h'), false, 'b evicted')
  t.equal(cache.has(a, 'h'), true)
  t.equal(cache.has(c, 'h'), true)
  for (let i = 0; i < 1000; i++) cache.add(cache.key(`u${i}`, 'pw'), `u${i}`, 'h')
  t.equal(cache.size, 2, 'never grows past max')
})

t.test('cache: keys are keyed hashes with unambiguous framing', async (t) => {
  const cache = new VerifiedCredentialCache(10, 60_000)
  const key = cache.key('alice', 'pw')
  t.match(key, /^[A-Za-z0-9_-]{43}$/, 'a SHA-256 digest (base64url)')
  // Keyed: none of the unkeyed digests an attacker could compute offline for this login.
  for (const text of ['alicepw', '5:alicepw', 'alice:pw', '5alicepw']) {
    t.not(key, createHash('sha256').update(text).digest('base64url'), `not the plain SHA-256 of "${text}"`)
  }
  t.equal(new VerifiedCredentialCache(10, 60_000).key('alice', 'pw'), key, 'one secret per process: every cache in it agrees')
  t.not(key, cache.key('alic', 'epw'), 'the username/password split changes the key')
  t.not(cache.key('a:b', 'c'), cache.key('a', 'b:c'))
  t.not(cache.key('', 'alicepw'), cache.key('alice', 'pw'))
  t.equal(cache.key('alice', 'pw'), key, 'stable within a process')
  t.not(key.includes('alice') || key.includes('pw'), true, 'no plain text in the key')
  t.equal(cache.has(key, 'h'), false)
  cache.add(key, 'alice', 'h')
  t.equal(cache.has(key, 'other hash'), false, 'a hit needs the same stored hash')
  t.equal(cache.has(key, 'h'), false, 'and the stale entry is gone')
  cache.add(cache.key('x', '1'), 'x', 'h')
  cache.add(cache.key('x', '2'), 'x', 'h')
  cache.add(cache.key('y', '1'), 'y', 'h')
  t.equal(cache.clearUser('x'), 2)
  t.equal(cache.size, 1)
})
