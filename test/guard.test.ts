import t from 'tap'
import Fastify from 'fastify'
import fastifyAuth from '@fastify/auth'
import multiauth, { MultiauthOptionError } from '../src/index.js'
import type { GuardSpec, MultiauthOptions } from '../src/index.js'
import { basicHeader, buildApp } from './helpers/app.js'

interface U { id: string, roles: string[] }
const users: Record<string, U> = {
  admin: { id: 'admin', roles: ['admin'] },
  editor: { id: 'editor', roles: ['editor'] },
  both: { id: 'both', roles: ['admin', 'editor'] },
  none: { id: 'none', roles: [] }
}
const options: MultiauthOptions = {
  realm: 'r',
  basic: { verify: (u, p) => p === 'pw' ? users[u] ?? null : null },
  apiKey: { verify: (key) => key === 'key-admin' ? users.admin : key === 'key-editor' ? users.editor : null },
  roles: (user) => (user as U).roles
}
async function appWith (spec: GuardSpec) {
  const app = await buildApp(options)
  app.get('/', { onRequest: app.authGuard(spec) }, async (request) => ({
    user: request.auth?.user ?? null,
    // What request.user holds at runtime (its type is opt-in: fastify-multiauth/request-user).
    requestUser: request.user,
    method: request.auth?.method,
    roles: request.auth?.roles ?? null
  }))
  return app
}
const asBasic = (u: string, p = 'pw') => ({ authorization: basicHeader(u, p) })
const asKey = (key: string) => ({ 'x-api-key': key })

t.test("['basic','apiKey'] accepts either; its 401 carries both challenges, Basic first", async (t) => {
  const app = await appWith(['basic', 'apiKey'])
  t.equal((await app.inject({ url: '/', headers: asBasic('admin') })).json().method, 'basic')
  t.equal((await app.inject({ url: '/', headers: asKey('key-editor') })).json().method, 'apiKey')
  const res = await app.inject({ url: '/' })
  t.equal(res.statusCode, 401)
  t.same(res.headers['www-authenticate'], ['Basic realm="r", charset="UTF-8"', 'ApiKey realm="r", header="X-API-Key"'])
})

t.test('any-of: a wrong Basic password plus a valid API key is admitted (design: precise rules)', async (t) => {
  const app = await appWith(['basic', 'apiKey'])
  const res = await app.inject({ url: '/', headers: { ...asBasic('admin', 'wrong'), ...asKey('key-editor') } })
  t.equal(res.statusCode, 200)
  t.equal(res.json().method, 'apiKey')
})

t.test('any-of: methods are tried in the listed order; absent credentials skip the callback', async (t) => {
  const calls: string[] = []
  const app = await buildApp({
    basic: { verify: () => { calls.push('basic'); return { id: 'b' } } },
    apiKey: { verify: () => { calls.push('apiKey'); return { id: 'k' } } }
  })
  app.get('/', { onRequest: app.authGuard(['apiKey', 'basic']) }, async (request) => request.auth?.method)
  t.equal((await app.inject({ url: '/', headers: { ...asBasic('x'), ...asKey('k') } })).body, 'apiKey')
  t.same(calls, ['apiKey'], 'the first success wins; basic never ran')
  calls.length = 0
  t.equal((await app.inject({ url: '/', headers: asBasic('x') })).body, 'basic')
  t.same(calls, ['basic'], 'apiKey had no credentials, so its callback was not called')
})

t.test("mode 'all' needs every method, for the same user; request.auth describes the first", async (t) => {
  const app = await appWith({ methods: ['basic', 'apiKey'], mode: 'all' })
  t.equal((await app.inject({ url: '/', headers: asBasic('admin') })).statusCode, 401, 'Basic alone')
  t.equal((await app.inject({ url: '/', headers: asKey('key-admin') })).statusCode, 401, 'API key alone')
  const both = await app.inject({ url: '/', headers: { ...asBasic('admin'), ...asKey('key-admin') } })
  t.equal(both.statusCode, 200)
  t.equal(both.json().method, 'basic')
  t.equal((await app.inject({ url: '/', headers: { ...asBasic('admin'), ...asKey('key-editor') } })).statusCode, 401, 'two different users')
})

t.test("roles: ['admin','editor'] admits either; [['admin','editor']] needs both; missing role → 403 never 401", async (t) => {
  const anyOf = await appWith({ methods: ['basic'], roles: ['admin', 'editor'] })
  const allOf = await appWith({ methods: ['basic'], roles: [['admin', 'editor']] })
  for (const u of ['admin', 'editor', 'both']) t.equal((await anyOf.inject({ url: '/', headers: asBasic(u) })).statusCode, 200, `any-of admits ${u}`)
  const none = await anyOf.inject({ url: '/', headers: asBasic('none') })
  t.equal(none.statusCode, 403)
  t.equal(none.json().code, 'FST_MULTIAUTH_FORBIDDEN')
  t.notOk(none.headers['www-authenticate'], 'a 403 for Basic carries no challenge')
  t.equal((await allOf.inject({ url: '/', headers: asBasic('admin') })).statusCode, 403, 'admin alone is not enough')
  t.equal((await allOf.inject({ url: '/', headers: asBasic('both') })).statusCode, 200)
  t.same((await allOf.inject({ url: '/', headers: asBasic('both') })).json().roles, ['admin', 'editor'], 'request.auth.roles')
})

t.test("roles mixing flat and nested: ['a', ['c','d']] admits a, or c and d", async (t) => {
  const app = await buildApp({ basic: { verify: (u) => ({ id: u }) }, roles: (user) => (user as { id: string }).id.split('+') })
  app.get('/', { onRequest: app.authGuard({ methods: ['basic'], roles: ['a', ['c', 'd']] }) }, async () => 'ok')
  const status = async (u: string) => (await app.inject({ url: '/', headers: asBasic(u, 'x') })).statusCode
  t.equal(await status('a'), 200)
  t.equal(await status('c+d'), 200)
  t.equal(await status('c'), 403)
  t.equal(await status('d+b'), 403)
})

t.test('a roles callback may return a string, a Set, or nothing', async (t) => {
  for (const [returned, expected] of [['admin', 200], [new Set(['admin']), 200], [null, 403], [undefined, 403]] as const) {
    const app = await buildApp({ basic: { verify: () => ({ id: 'x' }) }, roles: () => returned })
    app.get('/', { onRequest: app.authGuard({ methods: ['basic'], roles: ['admin'] }) }, async () => 'ok')
    t.equal((await app.inject({ url: '/', headers: asBasic('x') })).statusCode, expected, String(returned))
  }
})

t.test('optional: no credentials → handler runs with request.auth === null and request.user === null; wrong password → 401; known user without the role → 403', async (t) => {
  const app = await appWith({ methods: ['basic'], optional: true, roles: ['admin'] })
  const anonymous = await app.inject({ url: '/' })
  t.equal(anonymous.statusCode, 200)
  t.same(anonymous.json(), { user: null, requestUser: null, roles: null })
  t.equal((await app.inject({ url: '/', headers: asBasic('admin', 'wrong') })).statusCode, 401)
  t.equal((await app.inject({ url: '/', headers: asBasic('none') })).statusCode, 403)
  t.equal((await app.inject({ url: '/', headers: asBasic('admin') })).statusCode, 200)
})

t.test('a malformed Basic header is a 400 even in any-of, unless another method admits the request', async (t) => {
  const app = await appWith(['basic', 'apiKey'])
  t.equal((await app.inject({ url: '/', headers: { authorization: 'Basic !!!' } })).statusCode, 400)
  t.equal((await app.inject({ url: '/', headers: { authorization: 'Basic !!!', ...asKey('key-admin') } })).statusCode, 200)
})

t.test('guard and option errors are thrown at registration / route definition, naming the problem', async (t) => {
  const app = await buildApp({ basic: options.basic })
  t.throws(() => app.authGuard(['token']), { message: /method "token" is not configured/ })
  t.throws(() => app.authGuard(['token']), MultiauthOptionError)
  t.throws(() => app.authGuard(['nope' as never]), { message: /unknown method "nope"/ })
  t.throws(() => app.authGuard([]), { message: /at least one method/ })
  t.throws(() => app.authGuard(['basic', 'basic']), { message: /listed twice/ })
  t.throws(() => app.authGuard({ methods: ['basic'], mode: 'some' as never }), { message: /mode/ })
  t.throws(() => app.authGuard({ methods: ['basic'], roles: ['admin'] }), { message: /"roles" option/ })
  t.throws(() => app.authGuard({ methods: ['basic'], scopes: [1 as never] }), { message: /scopes/ })
  t.throws(() => app.authGuard({ methods: ['basic'], extra: 1 } as never), { message: /unknown authGuard option "extra"/ })

  const register = async (opts: unknown) => { const a = Fastify(); await a.register(multiauth, opts as MultiauthOptions); await a.ready() }
  await t.rejects(register({ basic: {} }), { message: /exactly one of basic.verify/ })
  await t.rejects(register({ basic: { verify: 'yes' } }), { message: /basic.verify must be a function/ })
  await t.rejects(register({ bsaic: {} }), { message: /unknown option options.bsaic/ })
  await t.rejects(register({ realm: 'a"b', basic: options.basic }), { message: /realm must not contain quotes/ })
  await t.rejects(register({ apiKey: { verify: () => null, extra: true } }), { message: /unknown option apiKey.extra/ })
  await t.rejects(register({ callbackTimeout: -1 }), { message: /callbackTimeout/ })
})

t.test('a route defined with a guard on an unconfigured method fails at startup, not at request time', async (t) => {
  const app = Fastify()
  await app.register(multiauth, { basic: options.basic })
  t.throws(() => app.get('/', { onRequest: app.authGuard(['token']) }, async () => 'open'), { message: /token/ })
})

t.test('verify* decorators of unconfigured methods exist and fail closed with 500 NOT_CONFIGURED', async (t) => {
  const app = await buildApp({ basic: options.basic })
  for (const name of ['verifyToken', 'verifyApiKey', 'verifySession', 'verifyOAuth2'] as const) {
    app.get(`/${name}`, { onRequest: app[name] }, async () => 'open')
  }
  for (const name of ['verifyToken', 'verifyApiKey', 'verifySession', 'verifyOAuth2']) {
    const res = await app.inject({ url: `/${name}`, headers: asBasic('admin') })
    t.equal(res.statusCode, 500, name)
    t.equal(res.json().code, 'FST_MULTIAUTH_NOT_CONFIGURED', name)
  }
})

t.test('verifyBasic and verifyApiKey work on their own as onRequest hooks', async (t) => {
  const app = await buildApp(options)
  app.get('/b', { onRequest: app.verifyBasic }, async (request) => request.auth?.method)
  app.get('/k', { onRequest: app.verifyApiKey }, async (request) => request.auth?.method)
  t.equal((await app.inject({ url: '/b', headers: asBasic('admin') })).body, 'basic')
  t.equal((await app.inject({ url: '/b', headers: asKey('key-admin') })).statusCode, 401)
  t.equal((await app.inject({ url: '/k', headers: asKey('key-admin') })).body, 'apiKey')
  t.equal((await app.inject({ url: '/k', headers: asBasic('admin') })).statusCode, 401)
})

t.test("inside @fastify/auth: app.auth([app.verifyBasic, app.verifyApiKey]) accepts either and refuses neither", async (t) => {
  const app = await buildApp(options)
  await app.register(fastifyAuth)
  app.get('/', { onRequest: app.auth([app.verifyBasic, app.verifyApiKey]) }, async (request) => ({ method: request.auth?.method }))
  app.get('/and', { onRequest: app.auth([app.verifyBasic, app.verifyApiKey], { relation: 'and' }) }, async (request) => ({ method: request.auth?.method }))
  t.same((await app.inject({ url: '/', headers: asBasic('admin') })).json(), { method: 'basic' })
  t.same((await app.inject({ url: '/', headers: asKey('key-editor') })).json(), { method: 'apiKey' })
  const refused = await app.inject({ url: '/', headers: asBasic('admin', 'wrong') })
  t.equal(refused.statusCode, 401)
  t.ok(refused.headers['www-authenticate'], 'a challenge is set')
  t.equal((await app.inject({ url: '/and', headers: asBasic('admin') })).statusCode, 401)
  t.equal((await app.inject({ url: '/and', headers: { ...asBasic('admin'), ...asKey('key-admin') } })).statusCode, 200)
})

t.test("the application's setErrorHandler shapes the body; the challenge survives it (an API's one JSON error shape)", async (t) => {
  const app = await buildApp(options)
  app.setErrorHandler((err: { statusCode?: number }, _request, reply) => {
    const status = err.statusCode ?? 500
    if (status === 401) return reply.code(401).send({ error: 'unauthorized', message: 'Invalid credentials' })
    if (status === 403) return reply.code(403).send({ error: 'forbidden', message: 'Forbidden' })
    return reply.code(status).send({ error: 'error' })
  })
  app.get('/', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  const res = await app.inject({ url: '/', headers: asBasic('admin', 'wrong') })
  t.equal(res.statusCode, 401)
  t.same(res.json(), { error: 'unauthorized', message: 'Invalid credentials' })
  t.equal(res.headers['www-authenticate'], 'Basic realm="r", charset="UTF-8"')
})
