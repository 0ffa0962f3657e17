// Attack cases against the guard and the error path, whatever the method.
// Each test name cites the rule it checks.
import t from 'tap'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { MultiauthOptions } from '../../src/index.js'
import { basicHeader, buildApp } from '../helpers/app.js'
import { captureLogs } from '../helpers/security.js'

const ALICE = { id: 'alice' }
const BOB = { id: 'bob' }
const SECRET_IN_ERROR = 'postgres://app:hunter2@db.internal/users'

async function appWith (options: MultiauthOptions, spec: Parameters<FastifyInstance['authGuard']>[0], logger?: unknown): Promise<{ app: FastifyInstance, ran: () => number }> {
  const app = await buildApp(options, logger === undefined ? {} : { logger: logger as never })
  let handlerRuns = 0
  const handler = async (request: FastifyRequest): Promise<unknown> => { handlerRuns++; return { user: request.auth?.user ?? null } }
  app.get('/r', { onRequest: app.authGuard(spec) }, handler)
  app.route({ method: 'OPTIONS', url: '/r', onRequest: app.authGuard(spec), handler })
  await app.ready()
  return { app, ran: () => handlerRuns }
}

t.test('[ASVS 4.0.3 V7.4.1, V4.1.5] a verify callback that throws gives 500, the handler never runs, the error message is not sent but is logged', async (t) => {
  const logs = captureLogs('info')
  const { app, ran } = await appWith({
    basic: { verify: async () => { throw new Error(SECRET_IN_ERROR) } }
  }, ['basic'], logs.logger)
  const res = await app.inject({ url: '/r', headers: { authorization: basicHeader('alice', 'pw') } })
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'FST_MULTIAUTH_CALLBACK_ERROR')
  t.notMatch(res.body, /hunter2|postgres/, 'nothing of the original error reaches the client')
  t.equal(res.headers['www-authenticate'], undefined, 'a server error is not a challenge')
  t.equal(ran(), 0, 'handler not run')
  t.match(logs.text(), /hunter2/, 'operators still see the cause in the log')
})

t.test('[ASVS 4.0.3 V7.4.1] a callback that throws synchronously, or throws a non-Error, is a 500 too', async (t) => {
  for (const thrown of [new TypeError('boom ' + SECRET_IN_ERROR), 'a string ' + SECRET_IN_ERROR, null]) {
    const { app, ran } = await appWith({
      apiKey: { verify: (() => { throw thrown }) as never }
    }, ['apiKey'])
    const res = await app.inject({ url: '/r', headers: { 'x-api-key': 'k' } })
    t.equal(res.statusCode, 500, `thrown ${String(thrown)}`)
    t.notMatch(res.body, /hunter2/)
    t.equal(ran(), 0)
  }
})

t.test('[ASVS 4.0.3 V4.1.5] a callback that rejects with a fake 401-looking error is still a 500, never a pass', async (t) => {
  const { app, ran } = await appWith({
    apiKey: { verify: async () => { throw Object.assign(new Error('nope'), { statusCode: 200 }) } }
  }, ['apiKey'])
  const res = await app.inject({ url: '/r', headers: { 'x-api-key': 'k' } })
  t.equal(res.statusCode, 500)
  t.equal(ran(), 0)
})

t.test('[ASVS 4.0.3 V4.1.5] a hanging verify callback gives 503 FST_MULTIAUTH_CALLBACK_TIMEOUT after the configured callbackTimeout', async (t) => {
  const { app, ran } = await appWith({
    callbackTimeout: 200,
    basic: { verify: async () => await new Promise(() => {}) }
  }, ['basic'])
  const start = process.hrtime.bigint()
  const res = await app.inject({ url: '/r', headers: { authorization: basicHeader('alice', 'pw') } })
  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT')
  // Not answered at once: the hanging callback can only end by the timer. A timer counts from
  // the event loop's cached time, which can be a scheduling delay older than our start, so the
  // bound is half the timeout (100 ms of margin), not the timeout itself.
  t.ok(elapsedMs >= 100, `waited for the 200 ms timeout (${elapsedMs.toFixed(0)} ms)`)
  t.equal(ran(), 0)
})

t.test('[ASVS 4.0.3 V4.1.5] a hanging roles callback is bounded by the same timeout (503), a throwing one is a 500', async (t) => {
  const hanging = await appWith({
    callbackTimeout: 60,
    apiKey: { verify: async () => ALICE },
    roles: async () => await new Promise<string[]>(() => {})
  }, { methods: ['apiKey'], roles: ['admin'] })
  const res = await hanging.app.inject({ url: '/r', headers: { 'x-api-key': 'k' } })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT')
  t.equal(hanging.ran(), 0)

  const throwing = await appWith({
    apiKey: { verify: async () => ALICE },
    roles: () => { throw new Error(SECRET_IN_ERROR) }
  }, { methods: ['apiKey'], roles: ['admin'] })
  const res2 = await throwing.app.inject({ url: '/r', headers: { 'x-api-key': 'k' } })
  t.equal(res2.statusCode, 500)
  t.notMatch(res2.body, /hunter2/)
  t.equal(throwing.ran(), 0)
})

t.test('[design: falsy returns] null, undefined, false, 0 and "" from a callback are all refused with 401', async (t) => {
  for (const value of [null, undefined, false, 0, '']) {
    const basic = await appWith({ basic: { verify: async () => value as never } }, ['basic'])
    const r1 = await basic.app.inject({ url: '/r', headers: { authorization: basicHeader('alice', 'pw') } })
    t.equal(r1.statusCode, 401, `basic.verify → ${JSON.stringify(value)}`)
    t.equal(r1.json().code, 'FST_MULTIAUTH_CREDENTIALS_INVALID', 'credentials were presented: invalid, not missing')
    const key = await appWith({ apiKey: { verify: () => value as never } }, ['apiKey'])
    const r2 = await key.app.inject({ url: '/r', headers: { 'x-api-key': 'k' } })
    t.equal(r2.statusCode, 401, `apiKey.verify → ${JSON.stringify(value)}`)
    t.equal(basic.ran() + key.ran(), 0)
  }
})

t.test('[design: falsy returns] basic.findCredential returning a record whose user is falsy is refused', async (t) => {
  const { hashPassword } = await import('../../src/index.js')
  const passwordHash = await hashPassword('right')
  const { app, ran } = await appWith({ basic: { findCredential: async () => ({ user: null as never, passwordHash }) } }, ['basic'])
  const res = await app.inject({ url: '/r', headers: { authorization: basicHeader('alice', 'right') } })
  t.equal(res.statusCode, 401)
  t.equal(ran(), 0)
})

t.test('[design: mode all] two methods that identify different users are refused', async (t) => {
  const { app, ran } = await appWith({
    basic: { verify: async () => ALICE },
    apiKey: { verify: async () => BOB }
  }, { methods: ['basic', 'apiKey'], mode: 'all' })
  const res = await app.inject({ url: '/r', headers: { authorization: basicHeader('alice', 'pw'), 'x-api-key': 'k' } })
  t.equal(res.statusCode, 401)
  t.equal(ran(), 0)
  const missing = await app.inject({ url: '/r', headers: { authorization: basicHeader('alice', 'pw') } })
  t.equal(missing.statusCode, 401, 'one of the two methods missing is refused')
})

t.test('[design: mode all] users with a null id are not "the same user"', async (t) => {
  const { app, ran } = await appWith({
    basic: { verify: async () => ({ id: null, name: 'a' }) },
    apiKey: { verify: async () => ({ id: null, name: 'b' }) }
  }, { methods: ['basic', 'apiKey'], mode: 'all' })
  const res = await app.inject({ url: '/r', headers: { authorization: basicHeader('alice', 'pw'), 'x-api-key': 'k' } })
  t.equal(res.statusCode, 401)
  t.equal(ran(), 0)
})

t.test('[design: optional] optional guard refuses bad credentials (401) and malformed ones (400), admits none', async (t) => {
  const { app, ran } = await appWith({
    basic: { verify: async (u, p) => u === 'alice' && p === 'pw' ? ALICE : null }
  }, { methods: ['basic'], optional: true })
  const anonymous = await app.inject({ url: '/r' })
  t.equal(anonymous.statusCode, 200)
  t.same(anonymous.json(), { user: null })
  const bad = await app.inject({ url: '/r', headers: { authorization: basicHeader('alice', 'wrong') } })
  t.equal(bad.statusCode, 401)
  const malformed = await app.inject({ url: '/r', headers: { authorization: 'Basic !!!' } })
  t.equal(malformed.statusCode, 400)
  t.equal(ran(), 1, 'only the anonymous request reached the handler')
})

t.test('[Fetch standard CORS preflight, design] a route that handles OPTIONS itself is guarded for preflights too; Origin alone is no preflight', async (t) => {
  // Before: any OPTIONS with Access-Control-Request-Method skipped the guard, so this handler ran anonymously.
  const { app, ran } = await appWith({ basic: { verify: async () => null } }, ['basic'])
  const preflight = await app.inject({ method: 'OPTIONS', url: '/r', headers: { origin: 'https://a.example', 'access-control-request-method': 'POST' } })
  t.equal(preflight.statusCode, 401, 'no CORS plugin answers it: the route\'s own handler would run, so it is guarded')
  t.equal(ran(), 0)
  const plain = await app.inject({ method: 'OPTIONS', url: '/r' })
  t.equal(plain.statusCode, 401)
  t.match(plain.headers['www-authenticate'], /^Basic /)
  const other = await app.inject({ method: 'OPTIONS', url: '/r', headers: { origin: 'https://a.example' } })
  t.equal(other.statusCode, 401, 'Origin alone is not a preflight')
  t.equal(ran(), 0, 'the handler never ran anonymously')
})

t.test('[RFC 7235 §3.1] every 401 carries a challenge; an API-key-only 401 says which header to use', async (t) => {
  const { app } = await appWith({ apiKey: { verify: async () => null } }, ['apiKey'])
  const res = await app.inject({ url: '/r' })
  t.equal(res.statusCode, 401)
  t.equal(res.json().code, 'FST_MULTIAUTH_CREDENTIALS_MISSING', 'nothing was presented')
  t.equal(res.headers['www-authenticate'], 'ApiKey realm="api", header="X-API-Key"')
})

t.test('[ASVS 4.0.3 V7.1.1] secrets never appear in the log, even at trace level', async (t) => {
  const logs = captureLogs('trace')
  const { app } = await appWith({
    basic: { verify: async (u, p) => u === 'alice' && p === 'Pa55-basic-secret' ? ALICE : null },
    apiKey: { verify: async (k) => k === 'key-secret-1234' ? ALICE : null }
  }, ['basic', 'apiKey'], logs.logger)
  const requests = [
    { authorization: basicHeader('alice', 'Pa55-basic-secret') },
    { authorization: basicHeader('alice', 'Pa55-basic-secret-wrong') },
    { 'x-api-key': 'key-secret-1234' },
    { 'x-api-key': 'key-secret-1234-wrong' },
    { authorization: 'Basic ' + Buffer.from('alice:Pa55-basic-secret\u0000').toString('base64') }
  ]
  const statuses = []
  for (const headers of requests) statuses.push((await app.inject({ url: '/r', headers })).statusCode)
  t.same(statuses, [200, 401, 200, 401, 400])
  const text = logs.text()
  t.match(text, /credentials refused/, 'refusals are logged (so the capture works)')
  t.notMatch(text, /Pa55-basic-secret|key-secret-1234/)
  t.notMatch(text, new RegExp(Buffer.from('alice:Pa55-basic-secret').toString('base64').slice(0, 20)), 'nor their base64')
})
