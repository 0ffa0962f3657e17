// The guard's security events (docs/events.md) through real apps (inject, and real HTTP for
// OAuth2 and a trusted token issuer): `authenticated`, `refused`, `forbidden`, `rate-limited`,
// `callback:error`, `callback:timeout`, each payload compared whole. Every credential presented
// carries MARKER (Basic user name and password, API key, a bearer token, a session cookie); the
// last test checks that no payload of any channel contains the marker, a credential or a header
// value sent with one.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import cors from '@fastify/cors'
import argon2 from 'argon2'
import { decodeJwt } from 'jose'
import multiauth, { apiKeyId, generateApiKey, hashPassword } from '../src/index.js'
import type { ApiKeyRecord, CallbackName, MultiauthEventName, MultiauthUser } from '../src/index.js'
import { basicHeader } from './helpers/app.js'
import { assertNoSecrets, recordEvents } from './helpers/events.js'
import type { RecordedEvent } from './helpers/events.js'
import { CookieJar, runCodeFlow, startOidcProvider } from './helpers/oidc-provider.js'
import { startResourceProvider } from './helpers/oidc-resource-provider.js'
import { freePort } from './helpers/redis.js'
import { cookieFrom, SESSION_SECRET } from './helpers/session-app.js'

const MARKER = 'mqz7marker'
const SECRET = 'a-token-secret-of-at-least-32-bytes!!'

interface User { id: string, roles: string[], scope: string }
const ANN: User = { id: 'ann', roles: ['admin'], scope: 'read write' }
const BOB: User = { id: 'bob', roles: [], scope: 'read' }
const USERS = new Map([[ANN.id, ANN], [BOB.id, BOB]])
const LOGINS = {
  ann: { username: `ann-${MARKER}`, password: `pw-${MARKER}-1` },
  bob: { username: `bob-${MARKER}`, password: `pw-${MARKER}-2` }
}
const idOf = (user: MultiauthUser): string => (user as User).id

/** Every credential this file presents, and every header value sent with one: no payload may contain any. */
const secrets = new Set<string>([MARKER])
const events = recordEvents(t)

/** The events of the channels the guard, the rate limits, the callbacks and the stores publish on (the flows' events are another test's). */
const GUARD_EVENTS = new Set<MultiauthEventName>(['authenticated', 'refused', 'forbidden', 'rate-limited', 'callback:error', 'callback:timeout', 'store:unavailable', 'store:recovered'])
function published (): RecordedEvent[] {
  return events.take().filter((event) => GUARD_EVENTS.has(event.name))
}

let requests = 0
interface Sent { res: LightMyRequestResponse, rid: string }
/**
 * One request, with a request id of its own (`requestIdHeader`), so a payload's `requestId` is
 * known exactly. Every header value sent is a secret, except the request id (that is the point)
 * and Sec-Fetch-Site (its value `cross-site` is also a refusal code).
 */
async function send (app: FastifyInstance, options: { method?: 'GET' | 'POST' | 'OPTIONS', url: string, headers?: Record<string, string>, payload?: Record<string, unknown>, remoteAddress?: string }): Promise<Sent> {
  const rid = `rid-${++requests}`
  for (const [name, value] of Object.entries(options.headers ?? {})) if (name !== 'sec-fetch-site') secrets.add(value)
  const res = await app.inject({ ...options, headers: { ...options.headers, 'x-request-id': rid } })
  return { res, rid }
}

const at = (rid: string, route: string, ip = '127.0.0.1'): { requestId: string, route: string, ip: string } => ({ requestId: rid, route, ip })

function basic (login: { username: string, password: string }): Record<string, string> {
  secrets.add(login.username)
  secrets.add(login.password)
  const header = basicHeader(login.username, login.password)
  secrets.add(header.slice('Basic '.length))
  return { authorization: header }
}

function apiKey (key: string): Record<string, string> {
  secrets.add(key)
  return { 'x-api-key': key }
}

function bearer (token: string): Record<string, string> {
  secrets.add(token)
  return { authorization: `Bearer ${token}` }
}

// API keys made by generateApiKey: the prefix is the marker, so every key carries it.
const KEYS = {
  ann: generateApiKey({ prefix: MARKER, environment: 'live' }),
  bob: generateApiKey({ prefix: MARKER, environment: 'live' }),
  revoked: generateApiKey({ prefix: MARKER, environment: 'live' }),
  unknown: generateApiKey({ prefix: MARKER, environment: 'live' })
}
const KEY_RECORDS = new Map<string, ApiKeyRecord>([
  [KEYS.ann.id, { user: ANN, hash: KEYS.ann.hash, scopes: ['read'] }],
  [KEYS.bob.id, { user: BOB, hash: KEYS.bob.hash }],
  [KEYS.revoked.id, { user: ANN, hash: KEYS.revoked.hash, revoked: true }]
])

const CREDENTIALS = new Map([
  [LOGINS.ann.username, { user: ANN, passwordHash: await hashPassword(LOGINS.ann.password) }],
  [LOGINS.bob.username, { user: BOB, passwordHash: await hashPassword(LOGINS.bob.password) }]
])

/** Every method, every guard shape: `/items/:id` takes any of them. */
async function mainApp (t: Test): Promise<FastifyInstance> {
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  await app.register(multiauth, {
    rateLimit: false,
    basic: { findCredential: (username) => CREDENTIALS.get(username) ?? null },
    apiKey: { findKey: (id) => KEY_RECORDS.get(id) ?? null },
    token: { secret: SECRET, findUser: (claims) => USERS.get(claims.sub) ?? null, claims: (user) => ({ sub: idOf(user), scope: (user as User).scope }) },
    session: { secret: SESSION_SECRET, secure: false, findUser: async (id) => USERS.get(id) ?? null },
    roles: (user) => (user as User).roles
  })
  const any = app.authGuard(['basic', 'token', 'apiKey', 'session'])
  const ok = async (): Promise<string> => 'ok'
  app.get('/items/:id', { onRequest: any }, ok)
  app.post('/items/:id', { onRequest: any }, ok)
  app.post('/cart', { onRequest: app.authGuard(['session', 'apiKey']) }, ok)
  app.get('/admin', { onRequest: app.authGuard({ methods: ['basic', 'token', 'apiKey'], roles: ['admin'] }) }, ok)
  app.get('/write', { onRequest: app.authGuard({ methods: ['token'], scopes: ['write'] }) }, ok)
  app.get('/optional', { onRequest: app.authGuard({ methods: ['basic', 'apiKey'], optional: true }) }, ok)
  app.get('/all', { onRequest: app.authGuard({ methods: ['basic', 'apiKey'], mode: 'all' }) }, ok)
  // Two guards on one request: a scope-wide hook and the route's own.
  app.get('/twice', { onRequest: [app.authGuard(['apiKey']), app.authGuard({ methods: ['apiKey'], scopes: ['read'] })] }, ok)
  app.get('/verifier', { onRequest: app.verifyApiKey }, ok)
  app.post<{ Body: { id: string } }>('/login', async (request) => {
    await app.authSessions.login(request, USERS.get(request.body.id) as User)
    return 'ok'
  })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

t.test('authenticated: once per admitted request, with the method, the user id and the key id', async (t) => {
  const app = await mainApp(t)
  published()
  const token = (await app.authTokens.issue(ANN)).accessToken

  let { res, rid } = await send(app, { url: '/items/1', headers: basic(LOGINS.ann) })
  t.equal(res.statusCode, 200)
  const admitted = (method: string, userId: string, keyId?: string): Record<string, unknown> =>
    ({ ...at(rid, '/items/:id'), method, userId, keyId, provider: undefined, issuer: undefined })
  t.strictSame(published(), [{ name: 'authenticated', payload: admitted('basic', 'ann') }], 'Basic: the route pattern, never the URL')

  ;({ res, rid } = await send(app, { url: '/items/2', headers: apiKey(KEYS.ann.key) }))
  t.equal(res.statusCode, 200)
  t.strictSame(published(), [{ name: 'authenticated', payload: admitted('apiKey', 'ann', apiKeyId(KEYS.ann.key)) }], 'API key: its public id')

  ;({ res, rid } = await send(app, { url: '/items/3', headers: bearer(token) }))
  t.equal(res.statusCode, 200)
  t.strictSame(published(), [{ name: 'authenticated', payload: admitted('token', 'ann') }])

  const login = await send(app, { method: 'POST', url: '/login', payload: { id: 'bob' } })
  const cookie = cookieFrom(login.res, 'sid') as string
  secrets.add(cookie)
  secrets.add(cookie.slice('sid='.length))
  published()
  ;({ res, rid } = await send(app, { url: '/items/4', headers: { cookie } }))
  t.equal(res.statusCode, 200)
  t.strictSame(published(), [{ name: 'authenticated', payload: admitted('session', 'bob') }])

  ;({ res, rid } = await send(app, { url: '/twice', headers: apiKey(KEYS.ann.key) }))
  t.equal(res.statusCode, 200)
  t.strictSame(published(), [{ name: 'authenticated', payload: { ...at(rid, '/twice'), method: 'apiKey', userId: 'ann', keyId: KEYS.ann.id, provider: undefined, issuer: undefined } }], 'two guards on one request: one event')

  ;({ res, rid } = await send(app, { url: '/verifier', headers: apiKey(KEYS.bob.key) }))
  t.equal(res.statusCode, 200)
  t.strictSame(published(), [{ name: 'authenticated', payload: { ...at(rid, '/verifier'), method: 'apiKey', userId: 'bob', keyId: KEYS.bob.id, provider: undefined, issuer: undefined } }], 'verifyApiKey publishes as a guard does')
})

t.test('refused: one event per refused credential, with its fixed reason', async (t) => {
  const app = await mainApp(t)
  published()
  const refused = (rid: string, method: string | undefined, reason: string, route = '/items/:id'): RecordedEvent =>
    ({ name: 'refused', payload: { ...at(rid, route), method, reason } } as RecordedEvent)
  const cases: Array<{ what: string, headers: Record<string, string>, status: number, method: string | undefined, reason: string }> = [
    { what: 'no credentials', headers: {}, status: 401, method: undefined, reason: 'missing' },
    { what: 'a wrong password', headers: basic({ username: LOGINS.ann.username, password: `wrong-${MARKER}` }), status: 401, method: 'basic', reason: 'wrong-password' },
    { what: 'an unknown user', headers: basic({ username: `nobody-${MARKER}`, password: LOGINS.ann.password }), status: 401, method: 'basic', reason: 'unknown-user' },
    { what: 'Basic credentials that cannot be decoded', headers: { authorization: `Basic ${MARKER}!!` }, status: 400, method: 'basic', reason: 'malformed' },
    { what: 'an unknown API key', headers: apiKey(KEYS.unknown.key), status: 401, method: 'apiKey', reason: 'unknown-key' },
    { what: 'a revoked API key', headers: apiKey(KEYS.revoked.key), status: 401, method: 'apiKey', reason: 'revoked' },
    { what: 'an API key of another format', headers: apiKey(`key-${MARKER}`), status: 401, method: 'apiKey', reason: 'malformed' },
    { what: 'a bearer token that is no JWT', headers: bearer(`${MARKER}.e30.x`), status: 401, method: 'token', reason: 'malformed' },
    { what: 'a bearer token with a bad signature', headers: bearer(`${(await app.authTokens.issue(ANN)).accessToken.slice(0, -6)}${MARKER.slice(0, 6)}`), status: 401, method: 'token', reason: 'invalid-signature' },
    // A cookie the server never signed carries no session: nothing was presented.
    { what: 'a forged session cookie', headers: { cookie: `sid=${MARKER}.forged` }, status: 401, method: undefined, reason: 'missing' }
  ]
  for (const c of cases) {
    const { res, rid } = await send(app, { url: '/items/1', headers: c.headers })
    t.equal(res.statusCode, c.status, `${c.what}: ${c.status}`)
    t.strictSame(published(), [refused(rid, c.method, c.reason)], `${c.what}: refused, ${c.reason}`)
  }

  let { res, rid } = await send(app, { url: '/items/5', headers: { ...basic({ username: LOGINS.bob.username, password: `nope-${MARKER}` }), ...apiKey(KEYS.ann.key) } })
  t.equal(res.statusCode, 200, 'a refused password, then an API key admits')
  t.strictSame(published(), [
    refused(rid, 'basic', 'wrong-password'),
    { name: 'authenticated', payload: { ...at(rid, '/items/:id'), method: 'apiKey', userId: 'ann', keyId: KEYS.ann.id, provider: undefined, issuer: undefined } }
  ], 'the refused credential, then the admission')

  ;({ res, rid } = await send(app, { url: '/items/6', headers: { authorization: `Basic ${MARKER}`, ...apiKey(KEYS.bob.key) } }))
  t.equal(res.statusCode, 200, 'malformed Basic credentials, then an API key admits')
  t.strictSame(published().map((e) => e.name), ['refused', 'authenticated'])

  ;({ res, rid } = await send(app, { url: '/all', headers: { ...basic(LOGINS.ann), ...apiKey(KEYS.bob.key) } }))
  t.equal(res.statusCode, 401, 'mode all: two methods, two users')
  t.strictSame(published(), [refused(rid, 'apiKey', 'different-users', '/all')])

  ;({ res, rid } = await send(app, { url: '/all', headers: basic(LOGINS.ann) }))
  t.equal(res.statusCode, 401, 'mode all: the API key is missing')
  t.strictSame(published(), [refused(rid, undefined, 'missing', '/all')])

  ;({ res, rid } = await send(app, { url: '/all', headers: { authorization: `Basic ${MARKER}!!`, ...apiKey(KEYS.ann.key) } }))
  t.equal(res.statusCode, 400, 'mode all: malformed Basic credentials')
  t.strictSame(published(), [refused(rid, 'basic', 'malformed', '/all')])

  ;({ res } = await send(app, { url: '/optional' }))
  t.equal(res.statusCode, 200, 'an optional guard admits a request without credentials')
  t.strictSame(published(), [], 'an anonymous request through an optional guard is no refusal')
})

t.test('no event for a CORS preflight the guard lets through', async (t) => {
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  await app.register(cors, { origin: 'https://front.example', hook: 'preHandler' })
  await app.register(multiauth, { apiKey: { verify: (key) => key === `key-${MARKER}-cors` ? ANN : null } })
  // A guard on every route, the CORS plugin's OPTIONS catch-all included: it must let the preflight through.
  app.addHook('onRequest', app.authGuard(['apiKey']))
  app.get('/data', async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  published()
  let { res, rid } = await send(app, { method: 'OPTIONS', url: '/data', headers: { origin: 'https://front.example', 'access-control-request-method': 'GET' } })
  t.equal(res.statusCode, 204, 'the CORS plugin answers the preflight')
  t.strictSame(published(), [], 'a preflight is no refusal')
  ;({ res, rid } = await send(app, { url: '/data' }))
  t.equal(res.statusCode, 401, 'the guard runs on this app')
  t.strictSame(published(), [{ name: 'refused', payload: { ...at(rid, '/data'), method: undefined, reason: 'missing' } }])
})

t.test('forbidden: a missing role or scope, a session cookie sent cross-site', async (t) => {
  const app = await mainApp(t)
  published()
  let { res, rid } = await send(app, { url: '/admin', headers: basic(LOGINS.bob) })
  t.equal(res.statusCode, 403)
  t.strictSame(published(), [{ name: 'forbidden', payload: { ...at(rid, '/admin'), method: 'basic', userId: 'bob', missing: 'role' } }], 'no authenticated event for a 403')

  ;({ res, rid } = await send(app, { url: '/write', headers: bearer((await app.authTokens.issue(BOB)).accessToken) }))
  t.equal(res.statusCode, 403)
  t.strictSame(published(), [{ name: 'forbidden', payload: { ...at(rid, '/write'), method: 'token', userId: 'bob', missing: 'scope' } }])

  const login = await send(app, { method: 'POST', url: '/login', payload: { id: 'ann' } })
  const cookie = cookieFrom(login.res, 'sid') as string
  secrets.add(cookie)
  secrets.add(cookie.slice('sid='.length))
  published()
  ;({ res, rid } = await send(app, { method: 'POST', url: '/items/7', headers: { cookie, 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' } }))
  t.equal(res.statusCode, 403, 'an unsafe cross-site request with the session cookie')
  t.strictSame(published(), [
    { name: 'refused', payload: { ...at(rid, '/items/:id'), method: 'session', reason: 'cross-site' } },
    { name: 'forbidden', payload: { ...at(rid, '/items/:id'), method: 'session', userId: undefined, missing: 'same-site' } }
  ], 'the credential refused, and the 403')

  ;({ res, rid } = await send(app, { method: 'POST', url: '/cart', headers: { cookie, 'sec-fetch-site': 'cross-site', ...apiKey(KEYS.bob.key) } }))
  t.equal(res.statusCode, 200, 'a method after the session admits the cross-site request')
  t.strictSame(published(), [
    { name: 'refused', payload: { ...at(rid, '/cart'), method: 'session', reason: 'cross-site' } },
    { name: 'authenticated', payload: { ...at(rid, '/cart'), method: 'apiKey', userId: 'bob', keyId: KEYS.bob.id, provider: undefined, issuer: undefined } }
  ], 'no 403, so no forbidden event')
})

t.test('rate-limited: every 429, with its budget and Retry-After, never the user name or key', async (t) => {
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  const key = `key-${MARKER}-ann`
  await app.register(multiauth, {
    basic: { verify: (username, password) => username === LOGINS.ann.username && password === LOGINS.ann.password ? ANN : null },
    apiKey: { verify: (presented) => presented === key ? ANN : null },
    rateLimit: { failuresPerIp: { max: 2 }, failuresPerUser: { max: 1 }, perCredential: { max: 1 } }
  })
  app.get('/data', { onRequest: app.authGuard(['basic', 'apiKey']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  published()
  const limited = (sent: Sent, budget: string, ip: string): RecordedEvent[] => {
    t.equal(sent.res.statusCode, 429)
    return [{ name: 'rate-limited', payload: { ...at(sent.rid, '/data', ip), budget, retryAfter: Number(sent.res.headers['retry-after']) } } as RecordedEvent]
  }

  t.equal((await send(app, { url: '/data', headers: basic({ ...LOGINS.ann, password: `bad-${MARKER}` }), remoteAddress: '10.0.0.1' })).res.statusCode, 401)
  published()
  let sent = await send(app, { url: '/data', headers: basic(LOGINS.ann), remoteAddress: '10.0.0.2' })
  t.strictSame(published(), limited(sent, 'failures-per-user', '10.0.0.2'), 'the user name\'s budget, spent from another IP')

  for (const name of ['carl', 'dave']) {
    t.equal((await send(app, { url: '/data', headers: basic({ username: `${name}-${MARKER}`, password: MARKER }), remoteAddress: '10.0.0.3' })).res.statusCode, 401)
  }
  published()
  sent = await send(app, { url: '/data', headers: basic({ username: `erin-${MARKER}`, password: MARKER }), remoteAddress: '10.0.0.3' })
  t.strictSame(published(), limited(sent, 'failures-per-ip', '10.0.0.3'), 'the IP\'s budget')

  t.equal((await send(app, { url: '/data', headers: apiKey(key), remoteAddress: '10.0.0.4' })).res.statusCode, 200)
  published()
  sent = await send(app, { url: '/data', headers: apiKey(key), remoteAddress: '10.0.0.4' })
  t.strictSame(published(), limited(sent, 'per-credential', '10.0.0.4'), 'the credential\'s quota: a 429, and no authenticated event')
})

/** An error whose message holds what a driver's message holds: a connection string with a password. */
class DatabaseDown extends Error {
  constructor (where: string) {
    super(`connection to postgres://app:${MARKER}@db.internal failed in ${where}`)
  }
}
secrets.add(`postgres://app:${MARKER}@db.internal`)

t.test('callback:error names the callback by its option path and the error by its class', async (t) => {
  const failing = new Set<CallbackName>()
  /** Throws (or rejects, for `async` callbacks) while `name` is in `failing`. */
  const maybeFail = (name: CallbackName): void => { if (failing.has(name)) throw new DatabaseDown(name) }
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  await app.register(multiauth, {
    basic: {
      verify: (username, password) => { maybeFail('basic.verify'); return username === LOGINS.ann.username && password === LOGINS.ann.password ? ANN : null },
      allowToken: true
    },
    apiKey: { verify: async (key) => { maybeFail('apiKey.verify'); return key === `key-${MARKER}` ? BOB : null } },
    token: {
      secret: SECRET,
      findUser: (claims) => { maybeFail('token.findUser'); return USERS.get(claims.sub) ?? null },
      claims: (user) => { maybeFail('token.claims'); return { sub: idOf(user) } }
    },
    session: {
      secret: SESSION_SECRET,
      secure: false,
      findUser: async (id) => { maybeFail('session.findUser'); return USERS.get(id) ?? null },
      userId: (user) => { maybeFail('session.userId'); return idOf(user) }
    },
    roles: (user) => { maybeFail('roles'); return (user as User).roles },
    rateLimit: { failuresPerUser: { normalizeUsername: (username) => { maybeFail('rateLimit.failuresPerUser.normalizeUsername'); return username } } }
  })
  app.get('/items/:id', { onRequest: app.authGuard(['basic', 'token', 'apiKey', 'session']) }, async () => 'ok')
  app.get('/admin', { onRequest: app.authGuard({ methods: ['basic'], roles: ['admin'] }) }, async () => 'ok')
  app.post<{ Body: { id: string } }>('/login', async (request) => {
    await app.authSessions.login(request, USERS.get(request.body.id) as User)
    return 'ok'
  })
  await app.ready()
  t.teardown(() => app.close())
  const token = (await app.authTokens.issue(ANN)).accessToken
  const login = await send(app, { method: 'POST', url: '/login', payload: { id: 'ann' } })
  const cookie = cookieFrom(login.res, 'sid') as string
  secrets.add(cookie)
  published()

  const cases: Array<{ callback: CallbackName, url?: string, route?: string, method?: 'POST', headers?: Record<string, string>, payload?: Record<string, unknown> }> = [
    { callback: 'basic.verify', headers: basic(LOGINS.ann) },
    { callback: 'apiKey.verify', headers: apiKey(`key-${MARKER}`) },
    { callback: 'token.findUser', headers: bearer(token) },
    // allowToken: a token as the Basic user-id is verified by the token method, with its findUser.
    { callback: 'token.findUser', headers: basic({ username: token, password: '' }) },
    { callback: 'session.findUser', headers: { cookie } },
    { callback: 'session.userId', method: 'POST', url: '/login', route: '/login', payload: { id: 'bob' } },
    { callback: 'roles', url: '/admin', route: '/admin', headers: basic(LOGINS.ann) },
    { callback: 'rateLimit.failuresPerUser.normalizeUsername', headers: basic(LOGINS.ann) }
  ]
  for (const c of cases) {
    failing.add(c.callback)
    const { res, rid } = await send(app, { url: c.url ?? '/items/1', method: c.method, headers: c.headers, payload: c.payload })
    failing.delete(c.callback)
    t.equal(res.statusCode, 500, `${c.callback}: a 500`)
    t.notMatch(res.body, MARKER, `${c.callback}: nothing of the error reaches the client`)
    t.strictSame(published(), [{ name: 'callback:error', payload: { ...at(rid, c.route ?? '/items/:id'), callback: c.callback, errorName: 'DatabaseDown' } }], `${c.callback}: named, with the error's class`)
  }

  failing.add('token.claims')
  await t.rejects(app.authTokens.issue(ANN), { code: 'FST_MULTIAUTH_CALLBACK_ERROR' })
  failing.delete('token.claims')
  t.strictSame(published(), [{ name: 'callback:error', payload: { callback: 'token.claims', errorName: 'DatabaseDown' } }], 'outside a request: no request fields')
})

t.test('callback:error: bad data, a thrown non-error, a 5xx the application chose; never for a 4xx it chose', async (t) => {
  let answer: () => unknown = () => null
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  await app.register(multiauth, {
    apiKey: { verify: async () => await Promise.resolve().then(answer) },
    roles: () => 42 as never
  })
  app.get('/data', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
  app.get('/admin', { onRequest: app.authGuard({ methods: ['apiKey'], roles: ['admin'] }) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  published()
  const headers = apiKey(`key-${MARKER}-2`)

  answer = () => { throw Object.assign(new Error(`Unconfirmed account ${MARKER}`), { statusCode: 403 }) }
  let { res, rid } = await send(app, { url: '/data', headers })
  t.equal(res.statusCode, 403, 'the application\'s own 403 is its answer')
  t.strictSame(published(), [], 'a 4xx thrown on purpose is no callback error')

  answer = () => { throw Object.assign(new DatabaseDown('apiKey.verify'), { statusCode: 503 }) }
  ;({ res, rid } = await send(app, { url: '/data', headers }))
  t.equal(res.statusCode, 503, 'a 5xx the application chose keeps its status')
  t.strictSame(published(), [{ name: 'callback:error', payload: { ...at(rid, '/data'), callback: 'apiKey.verify', errorName: 'DatabaseDown' } }])

  answer = () => { throw `a string, not an error: ${MARKER}` }
  ;({ res, rid } = await send(app, { url: '/data', headers }))
  t.equal(res.statusCode, 500)
  t.strictSame(published(), [{ name: 'callback:error', payload: { ...at(rid, '/data'), callback: 'apiKey.verify', errorName: 'string' } }], 'a thrown string: its type, not its text')
  secrets.add(`a string, not an error: ${MARKER}`)

  answer = () => ANN
  ;({ res, rid } = await send(app, { url: '/admin', headers }))
  t.equal(res.statusCode, 500, 'roles(user) answering a number is bad data')
  t.strictSame(published(), [{ name: 'callback:error', payload: { ...at(rid, '/admin'), callback: 'roles', errorName: 'TypeError' } }])
})

t.test('callback:error from the lookup callbacks and the background onRehash', async (t) => {
  const failing = new Set<CallbackName>()
  const weakHash = await argon2.hash(LOGINS.bob.password, { type: argon2.argon2id, memoryCost: 8192, timeCost: 1, parallelism: 1 })
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  await app.register(multiauth, {
    rateLimit: false,
    basic: {
      findCredential: async (username) => {
        if (failing.has('basic.findCredential')) throw new DatabaseDown('findCredential')
        return username === LOGINS.bob.username ? { user: BOB, passwordHash: weakHash } : null
      },
      onRehash: async () => { throw new DatabaseDown('onRehash') }
    },
    apiKey: { findKey: (id) => { if (failing.has('apiKey.findKey')) throw new DatabaseDown('findKey'); return KEY_RECORDS.get(id) ?? null } }
  })
  app.get('/me', { onRequest: app.authGuard(['basic', 'apiKey']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  published()

  for (const [callback, headers] of [['basic.findCredential', basic(LOGINS.bob)], ['apiKey.findKey', apiKey(KEYS.ann.key)]] as const) {
    failing.add(callback)
    const { res, rid } = await send(app, { url: '/me', headers })
    failing.delete(callback)
    t.equal(res.statusCode, 500)
    t.strictSame(published(), [{ name: 'callback:error', payload: { ...at(rid, '/me'), callback, errorName: 'DatabaseDown' } }], callback)
  }

  // A login with a hash of weaker parameters: admitted, then onRehash runs in the background and fails.
  const rehashFailed = events.next('callback:error')
  const { res, rid } = await send(app, { url: '/me', headers: basic(LOGINS.bob) })
  t.equal(res.statusCode, 200, 'the login does not wait for onRehash')
  t.strictSame(await rehashFailed, { ...at(rid, '/me'), callback: 'basic.onRehash', errorName: 'DatabaseDown' })
})

t.test('callback:timeout names the callback and the bound', async (t) => {
  const hanging = new Set<CallbackName>()
  const never = new Promise<never>(() => {})
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  await app.register(multiauth, {
    callbackTimeout: 100,
    apiKey: { verify: async (key) => hanging.has('apiKey.verify') ? await never : key === `key-${MARKER}-3` ? ANN : null },
    token: { secret: SECRET, findUser: (claims) => USERS.get(claims.sub) ?? null, claims: async (user) => hanging.has('token.claims') ? await never : { sub: idOf(user) } },
    roles: async (user) => hanging.has('roles') ? await never : (user as User).roles
  })
  app.get('/admin', { onRequest: app.authGuard({ methods: ['apiKey'], roles: ['admin'] }) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  published()

  for (const callback of ['apiKey.verify', 'roles'] as const) {
    hanging.add(callback)
    const { res, rid } = await send(app, { url: '/admin', headers: apiKey(`key-${MARKER}-3`) })
    hanging.delete(callback)
    t.equal(res.statusCode, 503)
    t.equal(JSON.parse(res.body).code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT')
    t.strictSame(published(), [{ name: 'callback:timeout', payload: { ...at(rid, '/admin'), callback, timeoutMs: 100 } }], callback)
  }

  hanging.add('token.claims')
  await t.rejects(app.authTokens.issue(ANN), { code: 'FST_MULTIAUTH_CALLBACK_TIMEOUT' })
  t.strictSame(published(), [{ name: 'callback:timeout', payload: { callback: 'token.claims', timeoutMs: 100 } }], 'outside a request')
})

t.test('OAuth2: the provider of the session that admitted the request; oauth2.findUser failing', async (t) => {
  const port = await freePort()
  const base = `http://localhost:${port}`
  const provider = await startOidcProvider({ redirectUris: [`${base}/auth/local/callback`] })
  t.teardown(provider.close)
  let fail = false
  const app = Fastify()
  await app.register(multiauth, {
    session: { secret: SESSION_SECRET, secure: false, findUser: (id) => ({ id }) },
    oauth2: {
      baseUrl: base,
      providers: { local: { issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret } },
      findUser: (profile) => { if (fail) throw new DatabaseDown('oauth2.findUser'); return { id: `local:${profile.id}` } }
    }
  })
  app.get('/oauth-only', { onRequest: app.authGuard(['oauth2']) }, async () => 'ok')
  await app.listen({ port, host: 'localhost' })
  t.teardown(() => app.close())
  const jar = new CookieJar()
  const { callback, callbackUrl } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer)
  t.equal(callback.status, 302)
  for (const value of jar.cookies.values()) secrets.add(value)
  for (const name of ['code', 'state']) secrets.add(callbackUrl.searchParams.get(name) ?? MARKER)
  published()
  const res = await jar.fetch(`${base}/oauth-only`)
  t.equal(res.status, 200)
  t.match(published(), [{ name: 'authenticated', payload: { requestId: String, route: '/oauth-only', ip: String, method: 'oauth2', userId: 'local:alice', keyId: undefined, provider: 'local', issuer: undefined } }])

  fail = true
  const failed = await runCodeFlow(new CookieJar(), `${base}/auth/local`, provider.issuer)
  t.equal(failed.callback.status, 500)
  secrets.add(failed.callbackUrl.searchParams.get('code') ?? MARKER)
  secrets.add(failed.callbackUrl.searchParams.get('state') ?? MARKER)
  t.match(published().filter((e) => e.name === 'callback:error'), [{ payload: { route: '/auth/local/callback', callback: 'oauth2.findUser', errorName: 'DatabaseDown' } }])
})

t.test('a trusted issuer\'s token: the issuer', async (t) => {
  const provider = await startResourceProvider()
  t.teardown(provider.close)
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  await app.register(multiauth, { token: { findUser: (claims) => ({ id: claims.sub }), issuers: [{ issuer: provider.issuer, audience: provider.audience }] } })
  app.get('/me', { onRequest: app.authGuard(['token']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const token = await provider.accessToken()
  published()
  const { res, rid } = await send(app, { url: '/me', headers: bearer(token) })
  t.equal(res.statusCode, 200)
  t.strictSame(published(), [{ name: 'authenticated', payload: { ...at(rid, '/me'), method: 'token', userId: decodeJwt(token).sub, keyId: undefined, provider: undefined, issuer: provider.issuer } }])
})

t.test('no payload of any channel carries a credential, the marker, or a header value sent with one', async (t) => {
  t.ok(events.all.length > 40, `${events.all.length} events recorded in this file`)
  assertNoSecrets(t, events.all, secrets)
})
