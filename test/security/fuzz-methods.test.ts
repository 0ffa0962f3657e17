// Property-based fuzzing (fast-check) of the parsers the token, API-key-record and session
// methods added: the API-key format parser and checksum, bearer-token extraction and
// verification, and what we do ourselves with session cookies and session records
// (cookie parsing and signatures belong to @fastify/cookie and @fastify/session; the record
// shape check and the store adapter's JSON are ours). Never a crash, a hang or a pass for
// anything but the valid credential. FUZZ_RUNS (default 10,000) runs per property.
import t from 'tap'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { BadRequestError, generateApiKey, MemoryStore, parseApiKey } from '../../src/index.js'
import { API_KEY_MAX_LENGTH } from '../../src/methods/api-key/key-format.js'
import type { ApiKeyRecord } from '../../src/index.js'
import { createTokenMethod } from '../../src/methods/token/index.js'
import { buildApp } from '../helpers/app.js'
import { COVERAGE, FUZZ_FILE_TIMEOUT_MS, FUZZ_RUNS, fuzzParams } from '../helpers/security.js'
import { bearer, claimsFor, handMadeJwt, SECRET, tokenApp } from '../helpers/tokens.js'
import { cookieFrom, sessionApp } from '../helpers/session-app.js'

t.setTimeout(FUZZ_FILE_TIMEOUT_MS) // scales with FUZZ_RUNS (see the helper)

const SLOW_MS = 2000
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** Replace, insert or delete a few characters of `s`. */
const near = (s: string, alphabet?: string): fc.Arbitrary<string> => fc.tuple(
  fc.nat({ max: s.length }),
  alphabet === undefined ? fc.string({ unit: 'binary', maxLength: 3 }) : fc.string({ unit: fc.constantFrom(...alphabet), maxLength: 3 }),
  fc.nat({ max: 3 })
).map(([at, insert, cut]) => s.slice(0, at) + insert + s.slice(at + cut))

/** `s` with A-Z folded to a-z and nothing else: auth schemes are ASCII tokens (RFC 7235 §2.1), no Unicode case mapping. */
const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32))

/**
 * The value of cookie `name` exactly as the server reads it: @fastify/cookie 11 parses the
 * Cookie header with cookie@2's parseCookie, and @fastify/session takes that value. Pairs are
 * split at ';' and a pair without '=' is skipped; name and value lose surrounding SP and HTAB
 * only (RFC 6265 §5.2's whitespace) — a '\n' or other whitespace stays part of the value, so
 * `sid=\n<real id>` names another id than the real one; the first pair of a name wins; a value
 * containing '%' is percent-decoded when it decodes, else kept as it is.
 */
function cookieAsParsed (header: string, name: string): string | undefined {
  if (header.length < 2) return undefined
  const ows = (s: string): string => s.replace(/^[ \t]+|[ \t]+$/g, '')
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1 || ows(pair.slice(0, eq)) !== name) continue
    const value = ows(pair.slice(eq + 1))
    if (!value.includes('%')) return value
    try { return decodeURIComponent(value) } catch { return value }
  }
  return undefined
}

function timed<T> (fn: () => T, stats: { slowest: number }): T {
  const start = performance.now()
  try { return fn() } finally { stats.slowest = Math.max(stats.slowest, performance.now() - start) }
}

t.test(`[design: API-key format] parseApiKey: ${FUZZ_RUNS} arbitrary and near-miss keys → undefined, or the exact parts of a well-formed key`, async (t) => {
  const keys = Array.from({ length: 5 }, (_, i) => generateApiKey({ prefix: ['ak', 'acme', 'x1'][i % 3] as string, environment: ['live', 'test'][i % 2] as string }).key)
  const validSet = new Set(keys)
  const stats = { slowest: 0 }
  let parsed = 0
  let nearMissesAccepted = 0
  const input = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 90 }),
    fc.constantFrom(...keys),
    fc.constantFrom(...keys).chain((k) => near(k, BASE62 + '_')),
    fc.constantFrom(...keys).chain((k) => near(k)),
    fc.tuple(fc.stringMatching(/^[a-z][a-z0-9]{0,16}$/), fc.stringMatching(/^[a-z][a-z0-9]{0,16}$/), fc.string({ unit: fc.constantFrom(...BASE62), minLength: 30, maxLength: 34 }))
      .map(([p, e, tail]) => `${p}_${e}_${tail}`),
    fc.string({ unit: fc.constantFrom('_', 'a', 'Z', '0', '\u0000', 'é', '\uD800'), maxLength: API_KEY_MAX_LENGTH + 3 })
  )
  fc.assert(fc.property(input, (key) => {
    const r = timed(() => parseApiKey(key), stats)
    if (r === undefined) return true
    parsed++
    if (!validSet.has(key)) nearMissesAccepted++
    // A result is only ever the exact split of <prefix>_<env>_<32 base62>.
    const m = /^([a-z][a-z0-9]{0,15})_([a-z][a-z0-9]{0,15})_([0-9A-Za-z]{32})$/.exec(key)
    return m !== null && r.prefix === m[1] && r.environment === m[2]
  }), fuzzParams(t))
  // CRC-32 catches every same-length change of up to 3 characters in the body (a burst of at most
  // 24 bits; CRC-32 detects all bursts up to 32); any other mutation that keeps the format passes
  // with probability 2^-32, so at 10,000 runs a false alarm here is below 3e-6.
  t.equal(nearMissesAccepted, 0, 'no mutated or made-up key passed the checksum')
  t.ok(parsed > FUZZ_RUNS / 20, `valid keys were generated and accepted too (${parsed})`, COVERAGE)
  t.ok(stats.slowest < SLOW_MS, `slowest call ${stats.slowest.toFixed(2)} ms`)
  t.equal(parseApiKey(undefined as never), undefined)
  t.equal(parseApiKey({ length: 3 } as never), undefined)
})

t.test(`[design: API-key records] ${FUZZ_RUNS} arbitrary X-API-Key values through inject with apiKey.findKey: 200 only for the issued key, findKey only for checksum-valid keys`, async (t) => {
  const issued = generateApiKey({ prefix: 'ak', environment: 'live' })
  const revoked = generateApiKey({ prefix: 'ak', environment: 'live' })
  const records = new Map<string, ApiKeyRecord<{ id: string }>>([
    [issued.id, { user: { id: 'svc' }, hash: issued.hash }],
    [revoked.id, { user: { id: 'old' }, hash: revoked.hash, revoked: true }]
  ])
  let lookups = 0
  let lookupsForBadChecksum = 0
  const app = await buildApp({ apiKey: { findKey: async (id) => { lookups++; return records.get(id) ?? null } } })
  app.get('/r', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const value = fc.oneof(
    fc.constant(issued.key), fc.constant(revoked.key), near(issued.key, BASE62 + '_'), near(issued.key),
    fc.string({ unit: 'binary', maxLength: 60 }), fc.constant(generateApiKey({ prefix: 'ak', environment: 'live' }).key)
  )
  const statuses: Record<number, number> = {}
  await fc.assert(fc.asyncProperty(value, async (key) => {
    const before = lookups
    let res
    try {
      res = await app.inject({ url: '/r', headers: { 'x-api-key': key } })
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_INVALID_CHAR') return true // refused by light-my-request, not by us
      throw err
    }
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
    if (lookups > before && parseApiKey(key) === undefined) lookupsForBadChecksum++
    if (key === issued.key) return res.statusCode === 200
    return res.statusCode === 401 || res.statusCode === 400
  }), fuzzParams(t))
  t.comment(`statuses ${JSON.stringify(statuses)}, lookups ${lookups}`)
  t.equal(lookupsForBadChecksum, 0, 'the database is never asked about a key whose checksum fails')
  t.ok((statuses[200] ?? 0) > 0 && (statuses[401] ?? 0) > 0, 'both outcomes exercised', COVERAGE)
})

t.test(`[RFC 6750 §2.1, RFC 7235 §2.1] bearer extraction: ${FUZZ_RUNS} arbitrary Authorization headers and queries → the exact token, undefined, or BadRequestError`, async (t) => {
  const method = createTokenMethod({ secret: SECRET, findUser: () => null, maxLength: 100 }, { realm: 'api', store: new MemoryStore(), methods: new Map(), timeoutMs: 10_000 })
  const stats = { slowest: 0 }
  const header = fc.option(fc.oneof(
    fc.string({ unit: 'binary', maxLength: 120 }),
    fc.tuple(fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Bearer:', 'Bear', 'Bearerx', 'Basic', 'DPoP', ''), fc.constantFrom(' ', '  ', '\t', '', ' \t'), fc.string({ maxLength: 110 }))
      .map(([s, sep, tok]) => s + sep + tok)
  ), { nil: undefined })
  const query = fc.option(fc.dictionary(fc.constantFrom('access_token', 'token', 'a'), fc.oneof(fc.string({ maxLength: 5 }), fc.array(fc.string({ maxLength: 3 }), { maxLength: 2 }))), { nil: undefined })
  fc.assert(fc.property(header, fc.boolean(), query, (value, repeated, q) => {
    const raw = value === undefined ? [] : (repeated ? ['Authorization', value, 'authorization', value] : ['Authorization', value])
    const request = { headers: value === undefined ? {} : { authorization: value }, query: q, raw: { rawHeaders: raw } } as unknown as FastifyRequest
    let r: unknown
    try {
      r = timed(() => method.extract(request), stats)
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err
      r = 'REJECTED'
    }
    // RFC 9110 §5.5: SP/HTAB around the field value are not part of it; then "bearer" 1*SP token68.
    const field = value?.replace(/^[ \t]+|[ \t]+$/g, '')
    const ours = field !== undefined && field.length > 6 && asciiLower(field.slice(0, 7)) === 'bearer '
    const token = ours ? field.slice(7).replace(/^ +/, '') : undefined
    if (r === 'REJECTED') {
      return (ours && (repeated || (value as string).length > 100 || !/^[A-Za-z0-9\-._~+/]+=*$/.test(token as string))) || (field !== undefined && asciiLower(field) === 'bearer') || (!ours && q?.access_token !== undefined)
    }
    if (r === undefined) return !ours && q?.access_token === undefined
    return ours && !repeated && (value as string).length <= 100 && r === token && token !== ''
  }), fuzzParams(t))
  t.ok(stats.slowest < SLOW_MS, `slowest call ${stats.slowest.toFixed(2)} ms`)
})

t.test(`[RFC 7519, RFC 8725] ${FUZZ_RUNS} arbitrary and mutated bearer tokens through inject: 200 only for tokens carrying the valid token's exact bytes`, async (t) => {
  const app = await tokenApp({ revocation: true })
  await app.ready()
  t.teardown(() => app.close())
  const valid = (await app.authTokens.issue({ id: 'ann' })).accessToken
  const [h, p, s] = valid.split('.') as [string, string, string]
  const bytes = (seg: string): string => Buffer.from(seg, 'base64url').toString('hex')
  const sameBytes = (token: string): boolean => {
    const parts = token.split('.')
    // The signature is computed over the header and payload *text* (RFC 7515 §5.2), so those must be exact;
    // the signature itself is compared as decoded bytes, and base64url decoders ignore trailing bits, so a
    // signature segment differing only there is the same signature. (Revocation is keyed on jti, not on the
    // token's text, so this malleability cannot dodge a revocation.)
    return parts.length === 3 && parts.every((x) => /^[A-Za-z0-9_-]*$/.test(x)) &&
      parts[0] === h && parts[1] === p && bytes(parts[2] as string) === bytes(s)
  }
  const good = claimsFor('ann', { scope: 'write' })
  const genuinelyValid = new Set<string>()
  const token = fc.oneof(
    fc.constant(valid), near(valid, 'AZaz09-_.='), near(valid),
    fc.string({ unit: 'binary', maxLength: 100 }),
    fc.tuple(fc.constantFrom(h, 'eyJhbGciOiJub25lIn0', ''), fc.constantFrom(p, ''), fc.constantFrom(s, '', 'x')).map((x) => x.join('.')),
    fc.record({ alg: fc.constantFrom('HS256', 'none', 'RS256', 'HS512', 'hs256', ''), typ: fc.constantFrom('at+jwt', 'JWT', undefined), kid: fc.option(fc.string({ maxLength: 5 }), { nil: undefined }) })
      .chain((header) => {
        const signed = handMadeJwt(header, good, SECRET)
        // Signed with our key, HS256, typed as an access token, unexpired: genuinely valid, whatever the kid (one key: kid is not consulted).
        if (header.alg === 'HS256' && header.typ === 'at+jwt') genuinelyValid.add(signed)
        return fc.constantFrom(signed, handMadeJwt(header, good), handMadeJwt(header, { ...good, exp: 1 }, SECRET))
      })
  )
  const statuses: Record<number, number> = {}
  await fc.assert(fc.asyncProperty(token, async (tok) => {
    let res
    try {
      res = await app.inject({ url: '/me', headers: bearer(tok) })
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_INVALID_CHAR') return true
      throw err
    }
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
    // "Bearer " + tok: SP after the scheme and SP/HTAB at the end are not part of the token (RFC 7235 §2.1, RFC 9110 §5.5).
    const trimmed = tok.replace(/^ +/, '').replace(/[ \t]+$/, '')
    if (sameBytes(trimmed) || genuinelyValid.has(trimmed)) return res.statusCode === 200
    return res.statusCode === 401 || res.statusCode === 400
  }), fuzzParams(t))
  t.comment(`statuses ${JSON.stringify(statuses)}`)
  t.ok((statuses[200] ?? 0) > 0 && (statuses[401] ?? 0) > 0 && (statuses[400] ?? 0) > 0, 'all outcomes exercised', COVERAGE)
})

t.test(`[ASVS 4.0.3 V3] ${FUZZ_RUNS} arbitrary Cookie headers and stored session records: 200 only for the real session of a known user, never 500`, async (t) => {
  // One pinned clock for the server and the oracle, so the absolute-timeout boundary is
  // decided on the same instant by both (a generated login time can fall anywhere).
  const realNow = Date.now
  const NOW = realNow()
  Date.now = () => NOW
  t.teardown(() => { Date.now = realNow })
  const store = new MemoryStore()
  const users = new Map([['u1', { id: 'u1', name: 'Alice' }]])
  const app = await sessionApp(users, { plugin: { store } })
  t.teardown(() => app.close())
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid') as string
  // The store key is ours (SessionStoreAdapter): "sess:" + SHA-256 of the unsigned session id.
  const signed = decodeURIComponent(cookie.slice(4))
  const skey = 'sess:' + createHash('sha256').update(signed.slice(0, signed.lastIndexOf('.'))).digest('base64url')
  const original = await store.get(skey)
  t.ok(original !== null, 'the session record is in the store')
  const value = cookie.slice(4)

  // What a hostile or corrupt store entry could hold, under the real session id.
  const record = fc.oneof(
    fc.constant(original as string),
    fc.string({ maxLength: 40 }),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc.record({
      u: fc.oneof(fc.constant('u1'), fc.constant('u2'), fc.constant(''), fc.integer(), fc.constant(null), fc.constant('__proto__')),
      t: fc.oneof(fc.constant(Date.now()), fc.constant(0), fc.constant(-1), fc.string({ maxLength: 3 }), fc.constant(null), fc.double())
    }, { requiredKeys: [] }).map((m) => JSON.stringify({ cookie: { originalMaxAge: 7_200_000, expires: new Date(Date.now() + 7_200_000), httpOnly: true, path: '/' }, multiauth: m }))
  )
  const cookieHeader = fc.oneof(
    fc.constant(cookie), near(value, 'A.%-_').map((v) => `sid=${v}`), near(cookie),
    fc.string({ unit: 'binary', maxLength: 80 }),
    fc.tuple(fc.constantFrom('sid', 'sid ', 'SID', '__Host-sid', ''), fc.string({ maxLength: 50 })).map(([n, v]) => `${n}=${v}`),
    fc.array(fc.constantFrom(cookie, 'sid=x', 'a=b', ';', 'sid=', '=='), { maxLength: 4 }).map((xs) => xs.join('; '))
  )
  const statuses: Record<number, number> = {}
  await fc.assert(fc.asyncProperty(cookieHeader, record, async (c, stored) => {
    await store.set(skey, stored, 60_000)
    let res
    try {
      res = await app.inject({ url: '/me', headers: { cookie: c } })
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_INVALID_CHAR') return true
      throw err
    }
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
    let parsed: { multiauth?: { u?: unknown, t?: unknown } } | undefined
    try { parsed = JSON.parse(stored) } catch {}
    const m = parsed?.multiauth
    // 200 only when the server reads exactly the signed session id (the signature is checked
    // on those exact bytes) and the record names a known user within the absolute timeout.
    const recordOk = typeof m?.u === 'string' && users.has(m.u) && typeof m.t === 'number' && !(NOW - m.t > 24 * 3_600_000)
    if (cookieAsParsed(c, 'sid') === signed && recordOk) return res.statusCode === 200
    return res.statusCode === 401
  }), fuzzParams(t))
  t.comment(`statuses ${JSON.stringify(statuses)}`)
  t.ok((statuses[200] ?? 0) > 0 && (statuses[401] ?? 0) > 0, 'both outcomes exercised', COVERAGE)

  // The counterexample of issue 17: a '\n' before the id is part of the value, not whitespace
  // the parser drops, so the id does not match its signature: 401 (an oracle that trim()med it expected 200).
  await store.set(skey, original as string, 60_000)
  const status = async (header: string): Promise<number> => (await app.inject({ url: '/me', headers: { cookie: header } })).statusCode
  t.equal(await status(`sid=\n${value}`), 401, 'sid=\\n<real id>: 401')
  t.equal(await status(`sid=${value}\u000b`), 401, 'sid=<real id>\\v: 401')
  t.equal(await status(`sid= \t${value}\t `), 200, 'SP and HTAB around the value are dropped (RFC 6265 §5.2): 200')
  t.equal(await status(`a=b; sid =${value};sid=x`), 200, 'the first sid pair counts, its name trimmed of SP')
  t.equal(await status(`sid=x; sid=${value}`), 401, 'a second sid pair does not count')
})
