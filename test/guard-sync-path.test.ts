import t from 'tap'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { MultiauthUser } from '../src/index.js'
import { basicHeader, buildApp, traced } from './helpers/app.js'
import { sessionApp, cookieFrom } from './helpers/session-app.js'

// authGuard returns a callback-style onRequest hook that calls done() synchronously when every
// step (extract, verify, roles) answered synchronously, and falls back to promises otherwise.
// These prove the synchronous path admits and refuses exactly like the asynchronous one: the
// same status, WWW-Authenticate, body and request.auth, for every outcome of the guard.

const SECRET = 'a-test-secret-of-at-least-32-bytes!!'
interface User { id: string, roles: string[], scope: string }
const USERS = new Map<string, User>([
  ['ann', { id: 'ann', roles: ['admin'], scope: 'read write' }],
  ['bob', { id: 'bob', roles: [], scope: 'read' }],
  ['crash', { id: 'crash', roles: [], scope: '' }]
])
const KEYS = new Map([['key-ann', 'ann'], ['key-bob', 'bob'], ['key-crash', 'crash']])

type Kind = 'sync' | 'async' | 'thenable'

/** A promise-like that is not a native Promise (a query builder, another promise library). */
function thenable<T> (value: T, fail?: Error): PromiseLike<T> {
  return { then: (resolve, reject) => (fail === undefined ? Promise.resolve(value) : Promise.reject(fail)).then(resolve, reject) }
}

/** The same answer, synchronously, as a native promise, or as a foreign thenable. */
function answer<T> (kind: Kind, value: T): any {
  if (kind === 'sync') return value
  if (kind === 'async') return Promise.resolve(value)
  return thenable(value)
}

/** The same failure: a synchronous throw, a rejected promise, or a rejecting thenable. */
function failure (kind: Kind, err: Error): any {
  if (kind === 'sync') throw err
  if (kind === 'async') return Promise.reject(err)
  return thenable(undefined, err)
}

async function appFor (kind: Kind): Promise<FastifyInstance> {
  const app = await buildApp({
    basic: { verify: (username, password) => answer(kind, password === 'pw' ? USERS.get(username) ?? null : null) },
    token: {
      secret: SECRET,
      findUser: (claims) => answer(kind, USERS.get(claims.sub) ?? null),
      claims: (user) => ({ sub: (user as User).id, scope: (user as User).scope })
    },
    apiKey: {
      verify: (key) => key === 'boom' ? failure(kind, new Error('db down')) : answer(kind, USERS.get(KEYS.get(key) ?? '') ?? null)
    },
    roles: (user) => (user as User).id === 'crash' ? failure(kind, new Error('roles db down')) : answer(kind, (user as User).roles)
  })
  const reply = async (request: FastifyRequest) => ({ user: request.auth?.user ?? null, auth: request.auth })
  app.route({ method: ['GET', 'OPTIONS'], url: '/any', onRequest: traced(app.authGuard(['basic', 'token', 'apiKey'])), handler: reply })
  app.get('/all', { onRequest: traced(app.authGuard({ methods: ['basic', 'apiKey'], mode: 'all' })) }, reply)
  app.get('/admin', { onRequest: traced(app.authGuard({ methods: ['basic', 'token', 'apiKey'], roles: ['admin'] })) }, reply)
  app.get('/write', { onRequest: traced(app.authGuard({ methods: ['token'], scopes: ['write'] })) }, reply)
  app.get('/optional', { onRequest: traced(app.authGuard({ methods: ['basic', 'apiKey'], optional: true })) }, reply)
  await app.ready()
  return app
}

interface Scenario {
  name: string
  url: string
  headers: (tokens: Record<string, string>) => Record<string, string>
  status: number
  /** A user callback runs, so the async apps cannot finish synchronously. */
  callsBack: boolean
}

const SCENARIOS: Scenario[] = [
  { name: 'no credentials', url: '/any', headers: () => ({}), status: 401, callsBack: false },
  { name: 'Basic admitted', url: '/any', headers: () => ({ authorization: basicHeader('ann', 'pw') }), status: 200, callsBack: true },
  { name: 'Basic refused', url: '/any', headers: () => ({ authorization: basicHeader('ann', 'nope') }), status: 401, callsBack: true },
  { name: 'Basic refused, then an API key admits', url: '/any', headers: () => ({ authorization: basicHeader('ann', 'nope'), 'x-api-key': 'key-bob' }), status: 200, callsBack: true },
  { name: 'bearer token admitted', url: '/any', headers: (tk) => ({ authorization: `Bearer ${tk.ann as string}` }), status: 200, callsBack: true },
  { name: 'bearer token refused (bad signature)', url: '/any', headers: (tk) => ({ authorization: `Bearer ${(tk.ann as string).slice(0, -4)}AAAA` }), status: 401, callsBack: false },
  { name: 'malformed Basic', url: '/any', headers: () => ({ authorization: 'Basic !!!' }), status: 400, callsBack: false },
  { name: 'malformed Basic, an API key admits', url: '/any', headers: () => ({ authorization: 'Basic !!!', 'x-api-key': 'key-ann' }), status: 200, callsBack: true },
  { name: 'verify throws', url: '/any', headers: () => ({ 'x-api-key': 'boom' }), status: 500, callsBack: true },
  { name: 'all: both methods, same user', url: '/all', headers: () => ({ authorization: basicHeader('ann', 'pw'), 'x-api-key': 'key-ann' }), status: 200, callsBack: true },
  { name: 'all: different users', url: '/all', headers: () => ({ authorization: basicHeader('ann', 'pw'), 'x-api-key': 'key-bob' }), status: 401, callsBack: true },
  { name: 'all: second method missing', url: '/all', headers: () => ({ authorization: basicHeader('ann', 'pw') }), status: 401, callsBack: true },
  { name: 'all: first method refused', url: '/all', headers: () => ({ authorization: basicHeader('ann', 'nope'), 'x-api-key': 'key-ann' }), status: 401, callsBack: true },
  { name: 'role held', url: '/admin', headers: () => ({ 'x-api-key': 'key-ann' }), status: 200, callsBack: true },
  { name: 'role missing', url: '/admin', headers: () => ({ 'x-api-key': 'key-bob' }), status: 403, callsBack: true },
  { name: 'roles callback throws', url: '/admin', headers: () => ({ 'x-api-key': 'key-crash' }), status: 500, callsBack: true },
  { name: 'scope held', url: '/write', headers: (tk) => ({ authorization: `Bearer ${tk.ann as string}` }), status: 200, callsBack: true },
  { name: 'scope missing (insufficient_scope)', url: '/write', headers: (tk) => ({ authorization: `Bearer ${tk.bob as string}` }), status: 403, callsBack: true },
  { name: 'optional, anonymous', url: '/optional', headers: () => ({}), status: 200, callsBack: false },
  { name: 'optional, refused key', url: '/optional', headers: () => ({ 'x-api-key': 'nope' }), status: 401, callsBack: true },
  { name: 'preflight to a route that handles OPTIONS itself is guarded', url: '/any', headers: () => ({ 'access-control-request-method': 'GET' }), status: 401, callsBack: false }
]

t.test('the synchronous path answers exactly like the asynchronous and thenable ones', async (t) => {
  const apps = { sync: await appFor('sync'), async: await appFor('async'), thenable: await appFor('thenable') }
  t.teardown(async () => { for (const app of Object.values(apps)) await app.close() })
  // One set of tokens (same secret everywhere), so request.auth.claims match across the apps.
  const tokens = {
    ann: (await apps.sync.authTokens.issue(USERS.get('ann') as MultiauthUser)).accessToken,
    bob: (await apps.sync.authTokens.issue(USERS.get('bob') as MultiauthUser)).accessToken
  }
  for (const scenario of SCENARIOS) {
    const method = scenario.name.startsWith('preflight') ? 'OPTIONS' : 'GET'
    const responses = {} as Record<Kind, Awaited<ReturnType<FastifyInstance['inject']>>>
    for (const kind of ['sync', 'async', 'thenable'] as const) {
      responses[kind] = await apps[kind].inject({ method, url: scenario.url, headers: scenario.headers(tokens) })
    }
    const { sync } = responses
    t.equal(sync.statusCode, scenario.status, `${scenario.name}: status`)
    t.equal(sync.headers['x-guard-sync'], 'yes', `${scenario.name}: the sync app called done() synchronously`)
    for (const kind of ['async', 'thenable'] as const) {
      const other = responses[kind]
      t.equal(other.statusCode, sync.statusCode, `${scenario.name}: ${kind} status`)
      t.same(other.headers['www-authenticate'], sync.headers['www-authenticate'], `${scenario.name}: ${kind} challenge`)
      t.same(other.json(), sync.json(), `${scenario.name}: ${kind} body (user and request.auth, or the error)`)
      if (scenario.callsBack) t.equal(other.headers['x-guard-sync'], 'no', `${scenario.name}: ${kind} went through a promise`)
    }
    if (scenario.status === 200 && scenario.url !== '/optional' && method === 'GET') t.ok(sync.json().auth?.method, `${scenario.name}: request.auth is set`)
  }
  // Spot checks that pin what "the same" is.
  const challenge = (await apps.sync.inject({ url: '/any', headers: { authorization: `Bearer ${tokens.ann.slice(0, -4)}AAAA` } })).headers['www-authenticate']
  t.match(String(challenge), /Bearer realm="api", error="invalid_token"/)
  const scoped = await apps.sync.inject({ url: '/write', headers: { authorization: `Bearer ${tokens.bob}` } })
  t.match(String(scoped.headers['www-authenticate']), /error="insufficient_scope"/)
  const thrown = await apps.sync.inject({ url: '/any', headers: { 'x-api-key': 'boom' } })
  t.equal(thrown.json().code, 'FST_MULTIAUTH_CALLBACK_ERROR', 'a synchronous throw is a server error')
  t.notMatch(thrown.body, /db down/, 'its message is not sent')
})

t.test('called by hand without done, the hook returns a promise', async (t) => {
  const app = await buildApp({ apiKey: { verify: (key) => key === 'key-ann' ? USERS.get('ann') : null } })
  const guard = app.authGuard(['apiKey'])
  const returned: unknown[] = []
  app.get('/', {
    onRequest: async (request, reply) => {
      const pending = guard(request, reply)
      returned.push(pending)
      await pending
    }
  }, async (request) => request.auth)
  t.teardown(() => app.close())
  const ok = await app.inject({ url: '/', headers: { 'x-api-key': 'key-ann' } })
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().method, 'apiKey')
  const refused = await app.inject({ url: '/', headers: { 'x-api-key': 'nope' } })
  t.equal(refused.statusCode, 401)
  t.match(String(refused.headers['www-authenticate']), /^ApiKey realm="api"/)
  t.equal(returned.length, 2)
  t.ok(returned.every((p) => p instanceof Promise), 'a promise both times, though the callback was synchronous')
})

t.test('verify* decorators stay promise-returning on the synchronous path', async (t) => {
  const app = await buildApp({ apiKey: { verify: (key) => key === 'key-ann' ? USERS.get('ann') : null } })
  const returned: unknown[] = []
  app.get('/', {
    onRequest: (request, reply, done) => {
      const pending = app.verifyApiKey(request, reply)
      returned.push(pending)
      pending.then(() => done(), done)
    }
  }, async (request) => request.auth)
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/', headers: { 'x-api-key': 'key-ann' } })).statusCode, 200)
  const refused = await app.inject({ url: '/', headers: { 'x-api-key': 'nope' } })
  t.equal(refused.statusCode, 401)
  t.equal(refused.json().code, 'FST_MULTIAUTH_CREDENTIALS_INVALID')
  t.ok(returned.length === 2 && returned.every((p) => p instanceof Promise), 'always a Promise (what @fastify/auth expects)')
})

t.test('sessions: a synchronous findUser answers like an asynchronous one', async (t) => {
  for (const kind of ['sync', 'async'] as const) {
    const users = new Map([['ann', { id: 'ann', name: 'Ann' }]])
    const app = await sessionApp(users, { session: { findUser: (id) => answer(kind, users.get(id) ?? null) } })
    t.teardown(() => app.close())
    const loggedIn = await app.inject({ method: 'POST', url: '/login', payload: { id: 'ann' } })
    const cookie = cookieFrom(loggedIn, 'sid') as string
    t.ok(cookie, `${kind}: logged in`)
    const me = await app.inject({ url: '/me', headers: { cookie } })
    t.equal(me.statusCode, 200, `${kind}: admitted`)
    t.same(me.json(), { user: { id: 'ann', name: 'Ann' }, method: 'session' })
    users.delete('ann')
    const gone = await app.inject({ url: '/me', headers: { cookie } })
    t.equal(gone.statusCode, 401, `${kind}: a user who is gone is refused`)
    t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, `${kind}: and the session is over`)
  }
})
