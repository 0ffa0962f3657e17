import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { MultiauthOptions } from '../src/index.js'
import { basicHeader, buildApp } from './helpers/app.js'

// The guard takes synchronous callback answers without a promise (issue 8's hot path). These
// pin the behaviour that must not change with it: sync, async and foreign-thenable answers,
// throws, the callbackTimeout, roles, and the preflight bypass.

const USER = { id: 'u1' }
const KEY = 'key-123'

/** A promise-like that is not a native Promise (a query builder, another promise library). */
function thenable<T> (value: T): PromiseLike<T> {
  return { then: (resolve, reject) => Promise.resolve(value).then(resolve, reject) }
}

async function appWith (options: MultiauthOptions, guard: Parameters<FastifyInstance['authGuard']>[0] = ['basic', 'apiKey']): Promise<FastifyInstance> {
  const app = await buildApp(options)
  app.get('/', { onRequest: app.authGuard(guard) }, async (request) => ({ user: request.auth?.user ?? null, method: request.auth?.method, roles: request.auth?.roles }))
  await app.ready()
  return app
}

const answers = {
  sync: (ok: boolean) => ok ? USER : null,
  async: async (ok: boolean) => ok ? USER : null,
  thenable: (ok: boolean) => thenable(ok ? USER : null)
}

for (const [kind, answer] of Object.entries(answers)) {
  t.test(`${kind} callback answers`, async (t) => {
    const app = await appWith({
      basic: { verify: (username, password) => answer(username === 'u1' && password === 'pw') as never },
      apiKey: { verify: (key) => answer(key === KEY) as never }
    })
    t.teardown(() => app.close())
    const basicOk = await app.inject({ url: '/', headers: { authorization: basicHeader('u1', 'pw') } })
    t.equal(basicOk.statusCode, 200)
    t.same(basicOk.json(), { user: USER, method: 'basic', roles: [] })
    const basicBad = await app.inject({ url: '/', headers: { authorization: basicHeader('u1', 'nope') } })
    t.equal(basicBad.statusCode, 401, 'a refused answer is never a success')
    const keyOk = await app.inject({ url: '/', headers: { 'x-api-key': KEY } })
    t.equal(keyOk.statusCode, 200)
    t.equal(keyOk.json().method, 'apiKey')
    t.equal((await app.inject({ url: '/', headers: { 'x-api-key': 'other' } })).statusCode, 401)
    const both = await app.inject({ url: '/', headers: { authorization: basicHeader('u1', 'nope'), 'x-api-key': KEY } })
    t.equal(both.statusCode, 200, 'any-of: a later method still admits')
  })
}

t.test('a callback that throws, synchronously or not, is a server error', async (t) => {
  for (const verify of [() => { throw new Error('db down') }, async () => { throw new Error('db down') }]) {
    const app = await appWith({ apiKey: { verify } }, ['apiKey'])
    t.teardown(() => app.close())
    const res = await app.inject({ url: '/', headers: { 'x-api-key': KEY } })
    t.equal(res.statusCode, 500)
  }
})

t.test('callbackTimeout still bounds an asynchronous callback', async (t) => {
  const app = await buildApp({ callbackTimeout: 20, apiKey: { verify: () => new Promise(() => {}) } })
  app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => 'never')
  t.teardown(() => app.close())
  const res = await app.inject({ url: '/', headers: { 'x-api-key': KEY } })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT')
})

t.test('roles from sync, async and thenable callbacks', async (t) => {
  for (const roles of [() => ['admin'], async () => ['admin'], () => thenable(['admin'])]) {
    const app = await buildApp({ apiKey: { verify: () => USER }, roles: roles as never })
    app.get('/admin', { onRequest: app.authGuard({ methods: ['apiKey'], roles: ['admin'] }) }, async (request) => request.auth?.roles)
    app.get('/root', { onRequest: app.authGuard({ methods: ['apiKey'], roles: ['root'] }) }, async () => 'no')
    t.teardown(() => app.close())
    const ok = await app.inject({ url: '/admin', headers: { 'x-api-key': KEY } })
    t.equal(ok.statusCode, 200)
    t.same(ok.json(), ['admin'])
    t.equal((await app.inject({ url: '/root', headers: { 'x-api-key': KEY } })).statusCode, 403)
  }
})

t.test('mode all with synchronous answers', async (t) => {
  const app = await appWith({ basic: { verify: () => USER }, apiKey: { verify: (key) => key === KEY ? USER : null } }, { methods: ['basic', 'apiKey'], mode: 'all' })
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/', headers: { authorization: basicHeader('u1', 'pw'), 'x-api-key': KEY } })).statusCode, 200)
  t.equal((await app.inject({ url: '/', headers: { authorization: basicHeader('u1', 'pw'), 'x-api-key': 'bad' } })).statusCode, 401)
  t.equal((await app.inject({ url: '/', headers: { authorization: basicHeader('u1', 'pw') } })).statusCode, 401)
})

t.test('an OPTIONS route of the application is guarded, preflight or not (only a CORS plugin may answer a preflight unauthenticated)', async (t) => {
  const app = await buildApp({ apiKey: { verify: () => USER } })
  app.options('/', { onRequest: app.authGuard(['apiKey']) }, async () => 'the application\'s OPTIONS handler')
  t.teardown(() => app.close())
  t.equal((await app.inject({ method: 'OPTIONS', url: '/', headers: { 'access-control-request-method': 'GET' } })).statusCode, 401)
  t.equal((await app.inject({ method: 'OPTIONS', url: '/' })).statusCode, 401)
  t.equal((await app.inject({ method: 'OPTIONS', url: '/', headers: { 'x-api-key': 'k' } })).statusCode, 200)
})

t.test('the scheme is matched ASCII case-insensitively, nothing more', async (t) => {
  const app = await appWith({ basic: { verify: () => USER } }, ['basic'])
  t.teardown(() => app.close())
  const token = Buffer.from('u1:pw').toString('base64')
  for (const scheme of ['Basic', 'basic', 'BASIC', 'bAsIc']) {
    t.equal((await app.inject({ url: '/', headers: { authorization: `${scheme} ${token}` } })).statusCode, 200, scheme)
  }
  for (const scheme of ['Basix', 'Bearer', 'Basi\u0441' /* Cyrillic es */, 'Ba\u017Fic' /* long s */]) {
    t.equal((await app.inject({ url: '/', headers: { authorization: `${scheme} ${token}` } })).statusCode, 401, JSON.stringify(scheme))
  }
})
