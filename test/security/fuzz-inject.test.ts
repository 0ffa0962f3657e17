// End-to-end fuzzing through Fastify's inject: arbitrary Authorization headers, API-key
// headers and query strings. Every outcome is 200 only for valid credentials, else 400
// or 401; never a 500, never a hang. FUZZ_RUNS (default 10,000) sets the runs.
import t from 'tap'
import fc from 'fast-check'
import querystring from 'fast-querystring'
import { buildApp } from '../helpers/app.js'
import { COVERAGE, FUZZ_FILE_TIMEOUT_MS, FUZZ_RUNS, fuzzParams } from '../helpers/security.js'

t.setTimeout(FUZZ_FILE_TIMEOUT_MS) // scales with FUZZ_RUNS (see the helper)

const USER = 'alice'
const PASSWORD = 'pa:ss'
const GOOD_BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64')
const KEY = 'key-0123456789'

t.test(`[RFC 7617, RFC 7235, design] ${FUZZ_RUNS} arbitrary requests: 2xx only for valid credentials, else 400/401`, async (t) => {
  let verified = 0
  const app = await buildApp({
    basic: { verify: async (u, p) => { verified++; return u === USER && p === PASSWORD ? { id: u } : null } },
    apiKey: { verify: async (k) => { verified++; return k === KEY ? { id: 'svc' } : null }, query: 'api_key' },
    rateLimit: false // thousands of refusals from one inject IP: this test is about parsing, not budgets
  })
  app.get('/r', { onRequest: app.authGuard(['basic', 'apiKey']) }, async () => 'ok')
  await app.ready()

  const near = (s: string): fc.Arbitrary<string> => fc.tuple(fc.nat({ max: s.length }), fc.string({ unit: 'binary', maxLength: 3 }), fc.nat({ max: 2 }))
    .map(([at, insert, cut]) => s.slice(0, at) + insert + s.slice(at + cut))
  const authorization = fc.option(fc.oneof(
    fc.string({ unit: 'binary', maxLength: 80 }),
    fc.tuple(fc.constantFrom('Basic ', 'basic ', 'BASIC  ', 'Basic', 'Bearer ', 'Basic\t'), fc.oneof(
      fc.constant(GOOD_BASIC), near(GOOD_BASIC),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64')),
      fc.tuple(fc.string({ unit: 'binary', maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 12 }))
        .map(([u, p]) => Buffer.from(`${u}:${p}`).toString('base64'))
    ), fc.constantFrom('', ' ', '  ')).map(([s, c, tail]) => s + c + tail)
  ), { nil: undefined })
  const apiKeyHeader = fc.option(fc.oneof(fc.constant(KEY), near(KEY), fc.string({ unit: 'binary', maxLength: 30 })), { nil: undefined })
  const query = fc.option(fc.oneof(
    fc.constant(`api_key=${KEY}`), near(`api_key=${KEY}`), fc.constant(`api_key=${KEY}&api_key=${KEY}`),
    fc.string({ unit: fc.constantFrom(...'api_key=%0A&+k-3'), maxLength: 24 })
  ), { nil: undefined })

  const statuses: Record<number, number> = {}
  await fc.assert(fc.asyncProperty(authorization, apiKeyHeader, query, async (auth, key, q) => {
    const headers: Record<string, string> = {}
    if (auth !== undefined) headers.authorization = auth
    if (key !== undefined) headers['x-api-key'] = key
    let res
    try {
      res = await app.inject({ url: q === undefined ? '/r' : `/r?${q}`, headers })
    } catch (err) {
      // light-my-request refuses some header values before Fastify sees them (not our parser).
      if ((err as { code?: string }).code === 'ERR_INVALID_CHAR') return true
      throw err
    }
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
    // The oracle, written independently of the code under test.
    // RFC 9110 §5.5: SP/HTAB around the field value are not part of it; then "basic" 1*SP token68.
    const field = auth?.replace(/^[ \t]+|[ \t]+$/g, '')
    const basicOk = field !== undefined && /^basic +/i.test(field) && field.replace(/^basic +/i, '') === GOOD_BASIC
    // inject normalises the URL as WHATWG URL does (drops tabs/newlines, trims, percent-encodes);
    // the oracle looks at the query the server actually receives, parsed by Fastify's own
    // query-string parser (fast-querystring): a repeated api_key is an array, other parameters beside it are allowed.
    const search = q === undefined ? '' : new URL(`/r?${q}`, 'http://localhost').search.slice(1)
    const query: Record<string, unknown> = search === '' ? {} : querystring.parse(search)
    const keyOk = (key === KEY && query.api_key === undefined) || (key === undefined && query.api_key === KEY)
    if (basicOk || keyOk) return res.statusCode === 200
    return res.statusCode === 400 || res.statusCode === 401
  }), fuzzParams(t))
  t.comment(`statuses: ${JSON.stringify(statuses)}; callbacks called ${verified} times`)
  t.ok((statuses[200] ?? 0) > 0 && (statuses[400] ?? 0) > 0 && (statuses[401] ?? 0) > 0, 'all three outcomes were exercised', COVERAGE)
})
