// Attack cases against the simple API-key method (header, optional query parameter)
// and its log redaction.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { ApiKeyOptions } from '../../src/index.js'
import { buildApp } from '../helpers/app.js'
import { rawRequest } from '../helpers/raw-http.js'
import { captureLogs } from '../helpers/security.js'

const KEY = 'key-0123456789abcdef'
let seen: string[] = []

async function keyApp (options: Partial<ApiKeyOptions> = {}, logger?: unknown): Promise<FastifyInstance> {
  const app = await buildApp({
    apiKey: { verify: async (key) => { seen.push(key); return key === KEY ? { id: 'svc' } : null }, ...options }
  }, logger === undefined ? {} : { logger: logger as never })
  app.get('/r', { onRequest: app.authGuard(['apiKey']) }, async (request) => ({ user: request.auth?.user ?? null }))
  await app.ready()
  return app
}

t.beforeEach(() => { seen = [] })

t.test('[design, RFC 7235 §3.1] a valid key in X-API-Key passes; the header name is case-insensitive', async (t) => {
  const app = await keyApp()
  t.equal((await app.inject({ url: '/r', headers: { 'X-Api-KEY': KEY } })).statusCode, 200)
  const wrong = await app.inject({ url: '/r', headers: { 'x-api-key': KEY + 'x' } })
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.headers['www-authenticate'], 'ApiKey realm="api", header="X-API-Key"')
})

t.test('[design: repeated credential header] two X-API-Key headers → 400 (inject)', async (t) => {
  const app = await keyApp()
  const res = await app.inject({ url: '/r', headers: { 'x-api-key': [KEY, 'other'] as unknown as string } })
  t.equal(res.statusCode, 400)
  t.same(seen, [])
})

t.test('[design: repeated credential header] two X-API-Key headers over real HTTP → 400 (Node joins them with ", ")', async (t) => {
  const app = await keyApp()
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const twice = await rawRequest(port, `GET /r HTTP/1.1\r\nHost: x\r\nX-API-Key: ${KEY}\r\nx-api-key: ${KEY}\r\nConnection: close\r\n\r\n`)
  t.equal(twice.status, 400)
  const once = await rawRequest(port, `GET /r HTTP/1.1\r\nHost: x\r\nX-API-Key: ${KEY}\r\nConnection: close\r\n\r\n`)
  t.equal(once.status, 200, 'control: one header passes')
  t.same(seen, [KEY])
})

t.test('[design: credentials never from the query unless enabled; ASVS 4.0.3 V13.1.3 no keys in URLs] a key in the query is ignored when query is off', async (t) => {
  const app = await keyApp()
  const res = await app.inject({ url: `/r?api_key=${KEY}` })
  t.equal(res.statusCode, 401)
  t.same(seen, [], 'verify never saw it')
})

t.test('[design] with query enabled: key in both header and query → 400; repeated query parameter → 400; query alone passes', async (t) => {
  const app = await keyApp({ query: true })
  t.equal((await app.inject({ url: `/r?api_key=${KEY}` })).statusCode, 200)
  t.equal((await app.inject({ url: `/r?api_key=${KEY}`, headers: { 'x-api-key': KEY } })).statusCode, 400)
  t.equal((await app.inject({ url: `/r?api_key=${KEY}&api_key=${KEY}` })).statusCode, 400)
  t.equal((await app.inject({ url: '/r?api_key=' })).statusCode, 400, 'empty key')
  t.equal((await app.inject({ url: `/r?api_key=${KEY}%00` })).statusCode, 400, 'NUL through percent-encoding')
  t.equal((await app.inject({ url: `/r?api_key=${KEY}%0d%0aX-Injected:1` })).statusCode, 400, 'CR LF through percent-encoding')
  t.same(seen, [KEY])
})

t.test('[design: header over the size limit] an oversized key → 400; control characters in the header → 400', async (t) => {
  const app = await keyApp({ maxLength: 64 })
  t.equal((await app.inject({ url: '/r', headers: { 'x-api-key': 'k'.repeat(65) } })).statusCode, 400)
  t.equal((await app.inject({ url: '/r', headers: { 'x-api-key': 'abc\u0001' } })).statusCode, 400)
  t.equal((await app.inject({ url: '/r', headers: { 'x-api-key': '' } })).statusCode, 400)
  t.same(seen, [])
})

t.test('[ASVS 4.0.3 V7.1.1] a key sent in the URL is not in the access log ("incoming request", error lines)', async (t) => {
  const logs = captureLogs('trace')
  const app = await keyApp({ query: 'token' }, logs.logger)
  t.equal((await app.inject({ url: `/r?a=1&token=${KEY}&b=2` })).statusCode, 200)
  t.equal((await app.inject({ url: '/r?token=wrong-key-secret' })).statusCode, 401)
  t.equal((await app.inject({ url: '/r?to%6Ben=encoded-name-secret' })).statusCode, 401, 'a percent-encoded parameter name is the same parameter')
  t.equal((await app.inject({ url: '/r?token=a&token=dup-secret' })).statusCode, 400)
  const lines = logs.lines()
  const incoming = lines.filter((l) => l.msg === 'incoming request')
  t.equal(incoming.length, 4, 'the incoming request line was logged for each request')
  t.same(incoming.map((l) => (l.req as { url: string }).url), ['/r?a=1&b=2', '/r', '/r', '/r'])
  t.notMatch(logs.text(), new RegExp(`${KEY}|wrong-key-secret|encoded-name-secret|dup-secret`))
})

t.test('[ASVS 4.0.3 V7.1.1] header keys are never logged, even at trace level', async (t) => {
  const logs = captureLogs('trace')
  const app = await keyApp({}, logs.logger)
  await app.inject({ url: '/r', headers: { 'x-api-key': KEY } })
  await app.inject({ url: '/r', headers: { 'x-api-key': 'refused-key-secret' } })
  t.match(logs.text(), /credentials refused/)
  t.notMatch(logs.text(), new RegExp(`${KEY}|refused-key-secret`))
})
