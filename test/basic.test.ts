import t from 'tap'
import { basicHeader, buildApp } from './helpers/app.js'
import { hashPassword, verifyPassword, needsRehash } from '../src/index.js'
import argon2 from 'argon2'

const users: Record<string, string> = { john: 'hello', user: 'pa:ss', jürgen: 'пароль' }
const verify = (username: string, password: string) => users[username] === password ? { id: username } : null

async function app (options = {}) {
  const app = await buildApp({ realm: 'example', basic: { verify }, ...options })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async (request) => ({
    user: request.auth?.user ?? null,
    via: request.auth?.method,
    // request.user still holds the same user at runtime (its type is opt-in: fastify-multiauth/request-user).
    sameAsRequestUser: request.user === request.auth?.user
  }))
  return app
}
const CHALLENGE = 'Basic realm="example", charset="UTF-8"'

t.test('valid credentials authenticate and set request.user / request.auth', async (t) => {
  const res = await (await app()).inject({ url: '/me', headers: { authorization: basicHeader('john', 'hello') } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { user: { id: 'john' }, via: 'basic', sameAsRequestUser: true })
})

t.test('wrong password, unknown user, missing header, wrong scheme → 401 with the Basic challenge', async (t) => {
  const a = await app()
  // Refused credentials and absent ones are both 401 with the challenge; the code says which.
  const cases: Array<[string, Record<string, string>, string]> = [
    ['wrong password', { authorization: basicHeader('john', 'nope') }, 'FST_MULTIAUTH_CREDENTIALS_INVALID'],
    ['unknown user', { authorization: basicHeader('mallory', 'hello') }, 'FST_MULTIAUTH_CREDENTIALS_INVALID'],
    ['missing header', {}, 'FST_MULTIAUTH_CREDENTIALS_MISSING'],
    ['wrong scheme', { authorization: 'Digest username="john"' }, 'FST_MULTIAUTH_CREDENTIALS_MISSING']
  ]
  for (const [name, headers, code] of cases) {
    const res = await a.inject({ url: '/me', headers })
    t.equal(res.statusCode, 401, name)
    t.equal(res.headers['www-authenticate'], CHALLENGE, `${name}: challenge`)
    t.equal(res.json().code, code, `${name}: code`)
  }
})

t.test('401 bodies for unknown user and wrong password are byte-identical', async (t) => {
  const a = await app()
  const unknown = await a.inject({ url: '/me', headers: { authorization: basicHeader('mallory', 'hello') } })
  const wrong = await a.inject({ url: '/me', headers: { authorization: basicHeader('john', 'nope') } })
  t.equal(unknown.statusCode, 401)
  t.equal(unknown.body, wrong.body)
  t.same(unknown.headers['www-authenticate'], wrong.headers['www-authenticate'])
})

t.test('the first colon splits: user:pa:ss is user "user" with password "pa:ss"', async (t) => {
  const res = await (await app()).inject({ url: '/me', headers: { authorization: 'Basic ' + Buffer.from('user:pa:ss').toString('base64') } })
  t.equal(res.statusCode, 200)
  t.same(res.json().user, { id: 'user' })
})

t.test('UTF-8 username and password authenticate (RFC 7617 charset="UTF-8")', async (t) => {
  const res = await (await app()).inject({ url: '/me', headers: { authorization: basicHeader('jürgen', 'пароль') } })
  t.equal(res.statusCode, 200)
  t.same(res.json().user, { id: 'jürgen' })
})

t.test('the scheme is case-insensitive (RFC 7235 §2.1)', async (t) => {
  const a = await app()
  const token = Buffer.from('john:hello').toString('base64')
  for (const scheme of ['basic', 'BASIC', 'bAsIc']) {
    const res = await a.inject({ url: '/me', headers: { authorization: `${scheme} ${token}` } })
    t.equal(res.statusCode, 200, scheme)
  }
})

t.test('malformed Basic credentials → 400 FST_MULTIAUTH_BAD_REQUEST', async (t) => {
  const a = await app()
  const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64')
  const cases: Array<[string, string]> = [
    ['not base64', 'Basic !!!'],
    ['no colon', 'Basic ' + b64('johnhello')],
    ['control character in password', 'Basic ' + b64('john:hel\u0007lo')],
    ['NUL in username', 'Basic ' + b64('jo\u0000hn:hello')],
    ['DEL', 'Basic ' + b64('john:\u007f')],
    ['C1 control as ISO-8859-1 (not UTF-8)', 'Basic ' + b64(Buffer.from([0x6a, 0x3a, 0x85]))],
    ['non-canonical base64 (bad padding)', 'Basic ' + b64('john:hello').replace(/=+$/, '')],
    ['scheme without credentials', 'Basic'],
    ['oversize header', 'Basic ' + b64('john:' + 'x'.repeat(9000))]
  ]
  for (const [name, authorization] of cases) {
    const res = await a.inject({ url: '/me', headers: { authorization } })
    t.equal(res.statusCode, 400, name)
    t.equal(res.json().code, 'FST_MULTIAUTH_BAD_REQUEST', `${name}: code`)
  }
})

t.test('basic.maxLength raises or lowers the header limit', async (t) => {
  const a = await app({ basic: { verify, maxLength: 20 } })
  const res = await a.inject({ url: '/me', headers: { authorization: basicHeader('john', 'hello-this-is-long') } })
  t.equal(res.statusCode, 400)
})

t.test('empty username is refused without calling verify', async (t) => {
  let calls = 0
  const a = await app({ basic: { verify: () => { calls++; return { id: 'x' } } } })
  const res = await a.inject({ url: '/me', headers: { authorization: basicHeader('', 'pw') } })
  t.equal(res.statusCode, 401)
  t.equal(calls, 0)
})

t.test('verify throwing → 500 and the handler does not run; its own statusCode is kept', async (t) => {
  let handled = 0
  let error: Error & { statusCode?: number } = new Error('database down')
  const a = await buildApp({ basic: { verify: () => { throw error } } })
  a.get('/me', { onRequest: a.authGuard(['basic']) }, async () => { handled++; return 'ok' })
  let res = await a.inject({ url: '/me', headers: { authorization: basicHeader('john', 'hello') } })
  t.equal(res.statusCode, 500)
  t.notMatch(res.body, /FST_MULTIAUTH_CREDENTIALS_/)
  error = Object.assign(new Error('unavailable'), { statusCode: 503 })
  res = await a.inject({ url: '/me', headers: { authorization: basicHeader('john', 'hello') } })
  t.equal(res.statusCode, 503)
  t.equal(handled, 0)
})

t.test('verify rejecting asynchronously → 500, never a 401 or a pass', async (t) => {
  const a = await buildApp({ basic: { verify: async () => { throw new Error('db') } } })
  a.get('/me', { onRequest: a.authGuard(['basic']) }, async () => 'ok')
  const res = await a.inject({ url: '/me', headers: { authorization: basicHeader('john', 'hello') } })
  t.equal(res.statusCode, 500)
})

t.test('every falsy return of verify is a failure', async (t) => {
  for (const value of [null, undefined, false, 0, '']) {
    const a = await buildApp({ basic: { verify: () => value as never } })
    a.get('/me', { onRequest: a.authGuard(['basic']) }, async () => 'ok')
    const res = await a.inject({ url: '/me', headers: { authorization: basicHeader('john', 'hello') } })
    t.equal(res.statusCode, 401, `verify returning ${JSON.stringify(value)}`)
  }
})

t.test('findCredential + argon2id: hashes verify, unknown users cost one argon2 verification', async (t) => {
  // Spy on the real argon2 (no stand-in): count verifications, keep behaviour.
  let verifications = 0
  const real = argon2.verify
  argon2.verify = (async (...args: Parameters<typeof real>) => { verifications++; return await real(...args) }) as typeof real
  t.teardown(() => { argon2.verify = real })
  const stored = { alice: await hashPassword('s3cret') }
  const a = await buildApp({
    basic: { findCredential: async (username: string) => username in stored ? { user: { id: username }, passwordHash: stored[username as 'alice'] } : null }
  })
  a.get('/me', { onRequest: a.authGuard(['basic']) }, async (request) => request.auth?.user ?? null)

  verifications = 0
  let res = await a.inject({ url: '/me', headers: { authorization: basicHeader('alice', 's3cret') } })
  t.equal(res.statusCode, 200)
  t.equal(verifications, 1, 'a known user: one verification')

  verifications = 0
  res = await a.inject({ url: '/me', headers: { authorization: basicHeader('nobody', 's3cret') } })
  t.equal(res.statusCode, 401)
  t.equal(verifications, 1, 'an unknown user still runs one argon2id verification')

  verifications = 0
  res = await a.inject({ url: '/me', headers: { authorization: basicHeader('alice', 'wrong') } })
  t.equal(res.statusCode, 401)
  t.equal(verifications, 1)
})

t.test('findCredential: a weaker stored hash is upgraded through onRehash after a successful login', async (t) => {
  const weak = await argon2.hash('pw', { type: argon2.argon2id, memoryCost: 8192, timeCost: 1, parallelism: 1 })
  t.ok(needsRehash(weak), 'the weak hash needs a rehash')
  const rehashed: Array<[unknown, string]> = []
  const a = await buildApp({
    basic: {
      findCredential: () => ({ user: { id: 'u' }, passwordHash: weak }),
      onRehash: (user, newHash) => { rehashed.push([user, newHash]) }
    }
  })
  a.get('/me', { onRequest: a.authGuard(['basic']) }, async () => 'ok')
  t.equal((await a.inject({ url: '/me', headers: { authorization: basicHeader('u', 'wrong') } })).statusCode, 401)
  t.equal(rehashed.length, 0, 'no rehash on a failed login')
  t.equal((await a.inject({ url: '/me', headers: { authorization: basicHeader('u', 'pw') } })).statusCode, 200)
  t.equal(rehashed.length, 1)
  const [user, newHash] = rehashed[0] as [unknown, string]
  t.same(user, { id: 'u' })
  t.notOk(needsRehash(newHash), 'the new hash uses current parameters')
  t.ok(await verifyPassword(newHash, 'pw'))
})

t.test('findCredential: an onRehash failure is logged and does not fail the login', async (t) => {
  const weak = await argon2.hash('pw', { type: argon2.argon2id, memoryCost: 8192, timeCost: 1, parallelism: 1 })
  const a = await buildApp({ basic: { findCredential: () => ({ user: { id: 'u' }, passwordHash: weak }), onRehash: () => { throw new Error('db read-only') } } })
  a.get('/me', { onRequest: a.authGuard(['basic']) }, async () => 'ok')
  t.equal((await a.inject({ url: '/me', headers: { authorization: basicHeader('u', 'pw') } })).statusCode, 200)
})

t.test('findCredential: a corrupt stored hash is a server error, not a failed login', async (t) => {
  const a = await buildApp({ basic: { findCredential: () => ({ user: { id: 'u' }, passwordHash: 'not-a-hash' }) } })
  a.get('/me', { onRequest: a.authGuard(['basic']) }, async () => 'ok')
  t.equal((await a.inject({ url: '/me', headers: { authorization: basicHeader('u', 'pw') } })).statusCode, 500)
})

t.test('password helpers: argon2id, verify, needsRehash', async (t) => {
  const hash = await hashPassword('correct horse')
  t.match(hash, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/)
  t.equal(await verifyPassword(hash, 'correct horse'), true)
  t.equal(await verifyPassword(hash, 'wrong'), false)
  t.equal(needsRehash(hash), false)
  await t.rejects(hashPassword(42 as never), TypeError)
})
