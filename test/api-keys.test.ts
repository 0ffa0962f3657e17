import t from 'tap'
import { Writable } from 'node:stream'
import { crc32 as zlibCrc32 } from 'node:zlib'
import {
  apiKeyId, describeApiKey, generateApiKey, hashApiKey, isApiKey, parseApiKey, rotateApiKey
} from '../src/index.js'
import type { ApiKeyRecord, MultiauthOptions } from '../src/index.js'
import { crc32 } from '../src/methods/api-key/key-format.js'
import { buildApp } from './helpers/app.js'

const BASE62 = /^[0-9A-Za-z]+$/

t.test('generateApiKey: format, randomness, id, hash, start', async (t) => {
  const k = generateApiKey({ prefix: 'acme', environment: 'live' })
  t.match(k.key, /^acme_live_[0-9A-Za-z]{32}$/, '<prefix>_<env>_<26 random><6 checksum>')
  const secret = k.key.slice('acme_live_'.length, -6)
  t.equal(secret.length, 26)
  t.ok(26 * Math.log2(62) >= 128 + 4 * Math.log2(62), 'at least 128 bits stay unseen after `start`')
  t.equal(k.hash, hashApiKey(k.key))
  t.match(k.hash, /^[0-9a-f]{64}$/)
  t.equal(k.id, apiKeyId(k.key))
  t.match(k.id, /^[0-9a-f]{24}$/)
  t.not(k.hash.startsWith(k.id), true, 'the id is not a piece of the stored hash')
  t.ok(k.start.startsWith('acme_live_'))
  t.ok(k.start.length - 'acme_live_'.length <= 8, '`start` shows at most 8 characters of the secret')
  t.equal(k.start, k.key.slice(0, 'acme_live_'.length + 4))
  t.same(parseApiKey(k.key), { prefix: 'acme', environment: 'live' })
  t.same(describeApiKey(k.key), k)

  const many = new Set(Array.from({ length: 200 }, () => generateApiKey({ prefix: 'ak', environment: 'test' }).key))
  t.equal(many.size, 200, 'no repeats')
  // Every base62 character appears across 200 keys × 26 characters (no biased alphabet).
  const seen = new Set([...many].flatMap((key) => [...key.slice(8, -6)]))
  t.equal(seen.size, 62)
})

t.test('checksum is CRC32 (same as zlib) and catches every single-character change', async (t) => {
  t.equal(crc32('hello world'), zlibCrc32('hello world'))
  const { key } = generateApiKey({ prefix: 'ak', environment: 'live' })
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
  let changed = 0
  for (let i = 0; i < key.length; i++) {
    for (const c of [alphabet[(alphabet.indexOf(key[i] as string) + 1) % 62] as string, '_']) {
      if (c === key[i]) continue
      const typo = key.slice(0, i) + c + key.slice(i + 1)
      if (isApiKey(typo)) t.fail(`typo at ${i} accepted: ${typo}`)
      changed++
    }
  }
  t.ok(changed > 60)
  t.equal(isApiKey(key.slice(0, -1)), false, 'truncated')
  t.equal(isApiKey(key + 'x'), false, 'extended')
  t.equal(isApiKey(''), false)
  t.equal(isApiKey('x'.repeat(100_000)), false)
})

t.test('generateApiKey refuses bad names', async (t) => {
  for (const prefix of ['', 'a_b', 'ACME', '1abc', 'x'.repeat(17), 5]) {
    t.throws(() => generateApiKey({ prefix: prefix as string, environment: 'live' }), TypeError, String(prefix))
  }
  t.throws(() => generateApiKey({ prefix: 'ak', environment: 'li-ve' }), TypeError)
  t.throws(() => generateApiKey(undefined as never), TypeError)
})

// A small key database of the kind an application keeps: records by id, hash only.
function keyDb () {
  const records = new Map<string, ApiKeyRecord<{ id: string }>>()
  let lookups = 0
  return {
    records,
    get lookups () { return lookups },
    issue (user: string, extra: Partial<ApiKeyRecord<{ id: string }>> = {}, environment = 'live') {
      const k = generateApiKey({ prefix: 'ak', environment })
      records.set(k.id, { user: { id: user }, hash: k.hash, environment, ...extra })
      return k
    },
    findKey: async (id: string) => { lookups++; return records.get(id) ?? null }
  }
}

function logLines () {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line !== '') lines.push(JSON.parse(line))
      cb()
    }
  })
  return { lines, stream, reasons: () => lines.filter((l) => l.msg === 'multiauth: credentials refused').map((l) => l.reason) }
}

async function keyApp (options: MultiauthOptions['apiKey'], extra: Partial<MultiauthOptions> = {}) {
  const log = logLines()
  const app = await buildApp({ apiKey: options, ...extra }, { logger: { level: 'info', stream: log.stream } })
  app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async (request) => ({ user: request.auth?.user ?? null, auth: request.auth }))
  app.get('/orders', { onRequest: app.authGuard({ methods: ['apiKey'], scopes: ['orders:read'] }) }, async () => ({ ok: true }))
  await app.ready()
  return { app, log }
}

t.test('findKey: a generated key verifies; request.auth carries keyId and scopes', async (t) => {
  const db = keyDb()
  const k = db.issue('u1', { scopes: ['orders:read'] })
  const { app } = await keyApp({ findKey: db.findKey })
  t.teardown(() => app.close())
  const res = await app.inject({ url: '/me', headers: { 'x-api-key': k.key } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { user: { id: 'u1' }, auth: { method: 'apiKey', user: { id: 'u1' }, roles: [], scopes: ['orders:read'], keyId: k.id } })
  t.equal(db.lookups, 1)
  t.equal((await app.inject({ url: '/orders', headers: { 'x-api-key': k.key } })).statusCode, 200)
})

t.test('findKey: a mistyped key fails the checksum before any lookup', async (t) => {
  const db = keyDb()
  const k = db.issue('u1')
  const { app, log } = await keyApp({ findKey: db.findKey })
  t.teardown(() => app.close())
  const i = k.key.length - 10
  const typo = k.key.slice(0, i) + (k.key[i] === 'a' ? 'b' : 'a') + k.key.slice(i + 1)
  const res = await app.inject({ url: '/me', headers: { 'x-api-key': typo } })
  t.equal(res.statusCode, 401)
  t.equal(db.lookups, 0, 'zero lookup calls')
  t.same(log.reasons(), ['not a well-formed key (format or checksum)'])
  t.equal(res.headers['www-authenticate'], 'ApiKey realm="api", header="X-API-Key"')
})

t.test('findKey: expired, revoked, wrong environment → 401, distinct log reasons, identical bodies', async (t) => {
  let now = Date.UTC(2030, 0, 1)
  const db = keyDb()
  const expired = db.issue('u1', { expiresAt: now - 1 })
  const expiredDate = db.issue('u1', { expiresAt: new Date(now) })
  const revoked = db.issue('u2', { revoked: true })
  const test = db.issue('u3', {}, 'test')
  const valid = db.issue('u4', { expiresAt: now + 1000 })
  const unknown = generateApiKey({ prefix: 'ak', environment: 'live' })
  const otherPrefix = generateApiKey({ prefix: 'zz', environment: 'live' })
  const { app, log } = await keyApp({ findKey: db.findKey, environment: 'live', prefix: 'ak', now: () => now })
  t.teardown(() => app.close())

  const bodies = new Set<string>()
  for (const key of [expired.key, expiredDate.key, revoked.key, test.key, unknown.key, otherPrefix.key]) {
    const res = await app.inject({ url: '/me', headers: { 'x-api-key': key } })
    t.equal(res.statusCode, 401)
    bodies.add(res.body)
  }
  t.equal(bodies.size, 1, 'one body for every refusal: ' + [...bodies].join(' | '))
  t.same(log.reasons(), ['key expired', 'key expired', 'key revoked', 'key of the wrong environment', 'unknown key', 'key prefix not accepted'])
  t.equal(db.lookups, 4, 'environment and prefix are refused before the lookup')

  t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': valid.key } })).statusCode, 200)
  now += 1000
  t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': valid.key } })).statusCode, 401, 'expires on the fake clock')
})

t.test('findKey: a record whose hash does not match is an unknown key; a broken record is a 500', async (t) => {
  const db = keyDb()
  const k = db.issue('u1')
  const other = generateApiKey({ prefix: 'ak', environment: 'live' })
  const { app, log } = await keyApp({ findKey: db.findKey })
  t.teardown(() => app.close())
  db.records.set(k.id, { user: { id: 'u1' }, hash: other.hash })
  t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': k.key } })).statusCode, 401)
  t.same(log.reasons(), ['unknown key'])
  db.records.set(k.id, { user: { id: 'u1' }, hash: 'not-a-hash' })
  t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': k.key } })).statusCode, 500)
  db.records.set(k.id, { user: { id: 'u1' }, hash: k.hash, expiresAt: 'tomorrow' as never })
  t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': k.key } })).statusCode, 500)
  db.records.set(k.id, { user: { id: 'u1' }, hash: k.hash, rateLimit: { max: 'x' as never } })
  t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': k.key } })).statusCode, 500)
})

t.test('the stored record contains no plaintext key', async (t) => {
  const db = keyDb()
  const k = db.issue('u1', { scopes: ['a'] })
  const stored = JSON.stringify([...db.records])
  t.notOk(stored.includes(k.key))
  t.notOk(stored.includes(k.key.slice(10, -6)), 'not even the secret part')
  const secret = k.key.slice('ak_live_'.length)
  for (let i = 0; i + 9 <= secret.length; i++) t.notOk(stored.includes(secret.slice(i, i + 9)), 'no 9-character run of the secret')
})

t.test('rotation: old and new both work during the grace, only the new after it', async (t) => {
  let now = Date.UTC(2030, 0, 1)
  const db = keyDb()
  const old = db.issue('u1', { scopes: ['orders:read'] })
  const { app, log } = await keyApp({ findKey: db.findKey, now: () => now })
  t.teardown(() => app.close())

  const oldRecord = db.records.get(old.id) as ApiKeyRecord<{ id: string }>
  const rotated = rotateApiKey({ ...oldRecord, id: old.id, start: old.start }, { grace: '1h', now: () => now })
  t.equal(rotated.prefix, 'ak')
  t.equal(rotated.environment, 'live')
  t.not(rotated.key, old.key)
  t.same(rotated.previous, { id: old.id, graceEndsAt: now + 3_600_000, replacedBy: rotated.id })
  db.records.set(old.id, { ...oldRecord, graceEndsAt: rotated.previous.graceEndsAt, replacedBy: rotated.id })
  db.records.set(rotated.id, { user: oldRecord.user, hash: rotated.hash, scopes: oldRecord.scopes, environment: 'live' })

  const get = async (key: string) => (await app.inject({ url: '/orders', headers: { 'x-api-key': key } })).statusCode
  t.equal(await get(old.key), 200, 'old key during the grace')
  t.equal(await get(rotated.key), 200, 'new key during the grace')
  now += 3_600_000 - 1
  t.equal(await get(old.key), 200, 'old key, last millisecond of the grace')
  now += 1
  t.equal(await get(old.key), 401, 'old key after the grace')
  t.equal(await get(rotated.key), 200, 'new key after the grace')
  t.same(log.reasons(), ['key rotated, grace period over'])
})

t.test('rotateApiKey: from the key string, never beyond the old expiry, refuses bad input', async (t) => {
  const now = 1_000_000
  const old = generateApiKey({ prefix: 'ak', environment: 'test' })
  const r = rotateApiKey(old.key, { grace: '60s', now: () => now })
  t.equal(r.environment, 'test')
  t.same(r.previous, { id: old.id, graceEndsAt: now + 60_000, replacedBy: r.id })
  const capped = rotateApiKey({ id: old.id, prefix: 'ak', environment: 'test', expiresAt: now + 5 }, { grace: '60s', now: () => now })
  t.equal(capped.previous.graceEndsAt, now + 5)
  t.equal(rotateApiKey(old.key, { grace: 0, now: () => now }).previous.graceEndsAt, now)
  // A bad grace is an option error (FST_MULTIAUTH_INVALID_OPTION, named "FastifyError"), still a TypeError.
  for (const grace of [-1, Number.NaN, 'a while']) {
    const err = t.throws(() => rotateApiKey(old.key, { grace }), { code: 'FST_MULTIAUTH_INVALID_OPTION', message: /rotateApiKey: grace/ }, `grace ${String(grace)}`)
    t.ok(err instanceof TypeError, `grace ${String(grace)}: a TypeError`)
  }
  t.throws(() => rotateApiKey(old.key.slice(0, -1) + (old.key.endsWith('0') ? '1' : '0'), { grace: '1s' }), TypeError, 'a mistyped key')
  t.throws(() => rotateApiKey({ id: 'x' }, { grace: '1s' }), TypeError, 'no prefix/environment')
  t.throws(() => rotateApiKey({ id: 'x', prefix: 'ak', environment: 'live', revoked: true }, { grace: '1s' }), TypeError)
})

t.test('scopes: a key without the scope gets 403 without a challenge', async (t) => {
  const db = keyDb()
  const k = db.issue('u1', { scopes: ['orders:write'] })
  const none = db.issue('u2')
  const { app, log } = await keyApp({ findKey: db.findKey })
  t.teardown(() => app.close())
  for (const key of [k.key, none.key]) {
    const res = await app.inject({ url: '/orders', headers: { 'x-api-key': key } })
    t.equal(res.statusCode, 403)
    t.equal(res.json().code, 'FST_MULTIAUTH_FORBIDDEN')
    t.equal(res.headers['www-authenticate'], undefined)
  }
  t.equal(log.lines.filter((l) => l.reason === 'missing scope').length, 2)
})

t.test('the simple verify(key) callback still works', async (t) => {
  const { app } = await keyApp({ verify: async (key) => key === 'plain-secret' ? { id: 'u1' } : null })
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': 'plain-secret' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': 'wrong' } })).statusCode, 401)
})

t.test('apiKey options are checked at registration', async (t) => {
  const findKey = async () => null
  await t.rejects(buildApp({ apiKey: {} as never }), /exactly one of apiKey.verify/)
  await t.rejects(buildApp({ apiKey: { findKey, verify: async () => null } }), /exactly one of/)
  await t.rejects(buildApp({ apiKey: { verify: async () => null, environment: 'live' } }), /apply only with apiKey.findKey/)
  await t.rejects(buildApp({ apiKey: { findKey, environment: [] } }), /apiKey.environment must be/)
  await t.rejects(buildApp({ apiKey: { findKey, prefix: 5 as never } }), /apiKey.prefix must be/)
  await t.rejects(buildApp({ apiKey: { findKey, now: 5 as never } }), /apiKey.now must be a function/)
})

t.test('findKey failures are server errors, never 401', async (t) => {
  const k = generateApiKey({ prefix: 'ak', environment: 'live' })
  const { app } = await keyApp({ findKey: async () => { throw new Error('database down') } })
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': k.key } })).statusCode, 500)
})

t.test('base62 alphabet of keys', async (t) => {
  t.match(generateApiKey({ prefix: 'a', environment: 'b' }).key.slice(4), BASE62)
})
