// Property-based fuzzing (fast-check) of every parser we own so far, called directly:
// arbitrary strings and bytes give either a clean result or a BadRequestError, never
// another exception, never a hang, and a result always satisfies the parser's contract.
// FUZZ_RUNS (default 10,000) sets the runs per property.
import t from 'tap'
import fc from 'fast-check'
import { isUtf8 } from 'node:buffer'
import type { FastifyRequest } from 'fastify'
import querystring from 'fast-querystring'
import { BadRequestError } from '../../src/index.js'
import { authorizationParam } from '../../src/core/headers.js'
import { decodeBasicCredentials } from '../../src/methods/basic/index.js'
import { createApiKeyMethod, redactQueryParam } from '../../src/methods/api-key/index.js'
import { MemoryStore } from '../../src/stores/memory.js'
import { COVERAGE, FUZZ_FILE_TIMEOUT_MS, FUZZ_RUNS, fuzzParams } from '../helpers/security.js'

t.setTimeout(FUZZ_FILE_TIMEOUT_MS) // scales with FUZZ_RUNS (see the helper)

// eslint-disable-next-line no-control-regex
const CONTROL_CC = /[\u0000-\u001f\u007f-\u009f]/
const SLOW_MS = 2000 // generous: a GC pause on a loaded machine is not a hang; catastrophic backtracking would be far slower

const REJECTED = Symbol('BadRequestError')

/** `s` with A-Z folded to a-z and nothing else: auth schemes are ASCII tokens (RFC 7235 §2.1), no Unicode case mapping. */
const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32))

/** Calls `fn`, returning its value or REJECTED when it threw a BadRequestError; any other throw fails the property. Tracks the slowest call. */
function outcome<T> (fn: () => T, stats: { slowest: number }): T | typeof REJECTED {
  const start = performance.now()
  try {
    return fn()
  } catch (err) {
    if (err instanceof BadRequestError) return REJECTED
    throw err
  } finally {
    stats.slowest = Math.max(stats.slowest, performance.now() - start)
  }
}

/** Strings that look like credentials often enough to reach the deep branches. */
const credentialText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: fc.constantFrom(...'aZ09+/=:- \t\u0000\u0085é€'), maxLength: 60 }),
  fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('base64')),
  fc.tuple(fc.string({ unit: 'binary', maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 20 }))
    .map(([u, p]) => Buffer.from(`${u}:${p}`, 'utf8').toString('base64')),
  fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('base64').replace(/=+$/, '')),
  fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('base64url'))
)

function fakeRequest (headers: Record<string, string | string[] | undefined>, rawHeaders?: string[], query?: Record<string, unknown>): FastifyRequest {
  const raw = rawHeaders ?? Object.entries(headers).flatMap(([k, v]) => v === undefined ? [] : (Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, v]))
  return { headers, query, raw: { rawHeaders: raw } } as unknown as FastifyRequest
}

t.test(`[RFC 7617 §2] decodeBasicCredentials: ${FUZZ_RUNS} arbitrary inputs → exact, control-free decode or BadRequestError`, async (t) => {
  const stats = { slowest: 0 }
  let decoded = 0
  fc.assert(fc.property(credentialText, (param) => {
    const r = outcome(() => decodeBasicCredentials(param), stats)
    if (r === REJECTED) return true
    decoded++
    // A decode is only ever the exact, canonical inverse of what the client sent: UTF-8 when
    // the bytes are UTF-8, else ISO-8859-1 (RFC 7617 §2.1, Appendix B).
    const charset = isUtf8(Buffer.from(param, 'base64')) ? 'utf8' : 'latin1'
    if (Buffer.from(`${r.username}:${r.password}`, charset).toString('base64') !== param) return false
    return !r.username.includes(':') && !CONTROL_CC.test(r.username) && !CONTROL_CC.test(r.password)
  }), fuzzParams(t))
  t.ok(decoded > FUZZ_RUNS / 20, `the generator reaches successful decodes too (${decoded})`, COVERAGE)
  t.ok(stats.slowest < SLOW_MS, `slowest call ${stats.slowest.toFixed(2)} ms`)
})

t.test(`[RFC 7235 §2.1] authorizationParam: ${FUZZ_RUNS} arbitrary headers → undefined, our scheme's credentials, or BadRequestError`, async (t) => {
  const stats = { slowest: 0 }
  const header = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 100 }),
    fc.tuple(fc.constantFrom('Basic', 'basic', 'BASIC', 'bAsIc', 'Basi', 'Basicx', 'Bearer', ''), fc.constantFrom(' ', '  ', '\t', '', ' \t'), credentialText)
      .map(([s, sep, c]) => s + sep + c),
    fc.constantFrom('Basic ', 'basic', 'Basic', ' Basic YTpi', 'Basic YTpi ', 'Basic \u00a0YTpi', '\tBasic  YTpi\t')
  )
  fc.assert(fc.property(header, fc.boolean(), fc.integer({ min: 1, max: 120 }), (value, repeated, maxLength) => {
    const raw = repeated ? ['Authorization', value, 'authorization', value] : ['Authorization', value]
    const r = outcome(() => authorizationParam(fakeRequest({ authorization: value }, raw), 'basic', maxLength), stats)
    // RFC 9110 §5.5: SP/HTAB around a field value are not part of it; then "basic" 1*SP token68.
    const field = value.replace(/^[ \t]+|[ \t]+$/g, '')
    const ours = asciiLower(field.slice(0, 6)) === 'basic '
    const token = field.slice(6).replace(/^ +/, '')
    if (r === REJECTED) return (ours && (repeated || value.length > maxLength || !/^[A-Za-z0-9\-._~+/]+=*$/.test(token))) || asciiLower(field) === 'basic'
    if (r === undefined) return !ours
    // Credentials are returned only for our scheme, within the limit, from a single header.
    return ours && !repeated && value.length <= maxLength && r === token
  }), fuzzParams(t))
  t.ok(stats.slowest < SLOW_MS, `slowest call ${stats.slowest.toFixed(2)} ms`)
})

t.test(`[design: API-key extraction] header/query extraction: ${FUZZ_RUNS} arbitrary inputs → the exact key, undefined, or BadRequestError`, async (t) => {
  const stats = { slowest: 0 }
  const method = createApiKeyMethod({ verify: () => null, query: 'api_key', maxLength: 64 }, { realm: 'api', store: new MemoryStore(), methods: new Map(), timeoutMs: 10_000 })
  const value = fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ maxLength: 10 }), fc.constant(''))
  const slot = fc.option(fc.oneof(value, fc.array(value, { minLength: 2, maxLength: 3 })), { nil: undefined })
  fc.assert(fc.property(slot, slot, fc.boolean(), (header, query, joinedDuplicate) => {
    // Real Node joins a repeated X-API-Key into one string; rawHeaders still lists both.
    const headerValue = Array.isArray(header) && joinedDuplicate ? header.join(', ') : header
    const raw = header === undefined ? [] : (Array.isArray(header) ? header : [header]).flatMap((v) => ['X-API-Key', v])
    const r = outcome(() => method.extract(fakeRequest({ 'x-api-key': headerValue }, raw, query === undefined ? {} : { api_key: query })), stats)
    if (r === undefined) return header === undefined && query === undefined
    const single = header !== undefined ? (query === undefined && !Array.isArray(header) ? header : undefined) : (Array.isArray(query) ? undefined : query)
    const valid = single !== undefined && single.length > 0 && single.length <= 64 && !/[\u0000-\u001f\u007f]/.test(single) // eslint-disable-line no-control-regex
    if (r === REJECTED) return !valid
    return valid && r === single
  }), fuzzParams(t))
  t.ok(stats.slowest < SLOW_MS, `slowest call ${stats.slowest.toFixed(2)} ms`)
})

t.test(`[ASVS 4.0.3 V7.1.1] redactQueryParam: ${FUZZ_RUNS} arbitrary URLs → the parameter is gone as Fastify's parser sees it, all else kept`, async (t) => {
  const stats = { slowest: 0 }
  const NAME = 'api_key'
  const keyPart = fc.oneof(
    fc.constantFrom(NAME, 'api%5Fkey', 'api%5fkey', '%61pi_key', 'api_key%', 'api+key', 'API_KEY', 'api_key ', 'a', ''),
    fc.string({ unit: fc.constantFrom(...'ab_%5F=+&?#'), maxLength: 8 }),
    fc.string({ unit: 'binary', maxLength: 8 })
  )
  const pair = fc.tuple(keyPart, fc.option(fc.string({ unit: fc.constantFrom(...'sk%0=&+ é'), maxLength: 8 }), { nil: undefined }))
    .map(([k, v]) => v === undefined ? k : `${k}=${v}`)
  const url = fc.tuple(fc.constantFrom('/r', '/', '/a/b'), fc.option(fc.array(pair, { maxLength: 6 }), { nil: undefined }))
    .map(([path, pairs]) => pairs === undefined ? path : `${path}?${pairs.join('&')}`)
  fc.assert(fc.property(url, (u) => {
    const r = outcome(() => redactQueryParam(u, NAME), stats)
    if (r === REJECTED || typeof r !== 'string') return false
    const q = r.indexOf('?')
    const after = q === -1 ? {} : querystring.parse(r.slice(q + 1))
    if (Object.hasOwn(after, NAME)) return false
    const before = u.indexOf('?') === -1 ? {} : querystring.parse(u.slice(u.indexOf('?') + 1))
    delete (before as Record<string, unknown>)[NAME]
    return JSON.stringify(Object.entries(before).sort()) === JSON.stringify(Object.entries(after).sort()) && r.startsWith(u.split('?')[0] as string)
  }), fuzzParams(t))
  t.ok(stats.slowest < SLOW_MS, `slowest call ${stats.slowest.toFixed(2)} ms`)
})
