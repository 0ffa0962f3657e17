import t from 'tap'
import Fastify from 'fastify'
import cors from '@fastify/cors'
import multiauth from '../src/index.js'
import { basicHeader } from './helpers/app.js'
import { cookieFrom, SESSION_SECRET } from './helpers/session-app.js'

const alice = { id: 'u1', name: 'Alice' }
const findUser = (id: string): typeof alice | null => id === 'u1' ? alice : null

/** Session plus Basic and API key on the same unsafe route, as a service with a web UI and an API would have. */
async function app (csrf?: false | { trustedOrigins: string[] }): Promise<ReturnType<typeof Fastify>> {
  const app = Fastify()
  await app.register(multiauth, {
    session: { secret: SESSION_SECRET, secure: false, findUser, ...(csrf === undefined ? {} : { csrf }) },
    basic: { verify: (u, p) => u === 'bob' && p === 'secret' ? { id: 'u2', name: 'Bob' } : null },
    apiKey: { verify: (key) => key === 'key-123' ? { id: 'u3', name: 'Service' } : null }
  })
  app.post('/login', async (request) => { await app.authSessions.login(request, alice); return 'ok' })
  app.get('/data', { onRequest: app.authGuard(['session', 'basic', 'apiKey']) }, async (request) => ({ via: request.auth?.method }))
  app.post('/data', { onRequest: app.authGuard(['session', 'basic', 'apiKey']) }, async (request) => ({ via: request.auth?.method }))
  app.route({ method: ['PUT', 'PATCH', 'DELETE'], url: '/data', onRequest: app.authGuard(['session']), handler: async () => 'ok' })
  app.post('/session-only', { onRequest: app.authGuard(['session']) }, async (request) => ({ via: request.auth?.method }))
  return app
}

async function loggedIn (server: Awaited<ReturnType<typeof app>>): Promise<string> {
  return cookieFrom(await server.inject({ method: 'POST', url: '/login' }), 'sid') as string
}

t.test('unsafe request with the session cookie and no proof of origin → 403', async (t) => {
  const server = await app()
  const cookie = await loggedIn(server)
  const noOrigin = await server.inject({ method: 'POST', url: '/data', headers: { cookie } })
  t.equal(noOrigin.statusCode, 403, 'no Origin, no Sec-Fetch-Site')
  t.equal(noOrigin.json().code, 'FST_MULTIAUTH_CROSS_SITE')
  t.equal(noOrigin.json().message, 'Cross-site request refused')
  t.equal(noOrigin.headers['www-authenticate'], undefined, 'no challenge on a 403')
  const foreign = await server.inject({ method: 'POST', url: '/data', headers: { cookie, origin: 'https://evil.example' } })
  t.equal(foreign.statusCode, 403, 'foreign Origin')
  const crossSite = await server.inject({ method: 'POST', url: '/data', headers: { cookie, 'sec-fetch-site': 'cross-site', origin: 'http://localhost:80' } })
  t.equal(crossSite.statusCode, 403, 'Sec-Fetch-Site: cross-site wins over a matching Origin')
  const sameSite = await server.inject({ method: 'POST', url: '/data', headers: { cookie, 'sec-fetch-site': 'same-site', origin: 'https://other.localhost' } })
  t.equal(sameSite.statusCode, 403, 'a sibling subdomain is not trusted by default')
  const nullOrigin = await server.inject({ method: 'POST', url: '/session-only', headers: { cookie, origin: 'null' } })
  t.equal(nullOrigin.statusCode, 403, 'Origin: null (sandboxed frame)')
  for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
    t.equal((await server.inject({ method, url: '/data', headers: { cookie, origin: 'https://evil.example' } })).statusCode, 403, method)
  }
})

t.test('same-origin unsafe requests pass', async (t) => {
  const server = await app()
  const cookie = await loggedIn(server)
  const fetchMeta = await server.inject({ method: 'POST', url: '/data', headers: { cookie, 'sec-fetch-site': 'same-origin' } })
  t.same(fetchMeta.json(), { via: 'session' }, 'Sec-Fetch-Site: same-origin')
  const origin = await server.inject({ method: 'POST', url: '/data', headers: { cookie, host: 'app.example:8080', origin: 'http://app.example:8080' } })
  t.same(origin.json(), { via: 'session' }, 'Origin equal to this server\'s origin')
  const get = await server.inject({ method: 'GET', url: '/data', headers: { cookie, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } })
  t.equal(get.statusCode, 200, 'safe methods are not checked (SameSite=Lax already withholds the cookie from cross-site subrequests)')
})

t.test('the same cross-site POST authenticated by Basic or API key is allowed', async (t) => {
  const server = await app()
  const cookie = await loggedIn(server)
  const headers = { cookie, origin: 'https://evil.example' }
  const basic = await server.inject({ method: 'POST', url: '/data', headers: { ...headers, authorization: basicHeader('bob', 'secret') } })
  t.equal(basic.statusCode, 200)
  t.same(basic.json(), { via: 'basic' })
  const apiKey = await server.inject({ method: 'POST', url: '/data', headers: { ...headers, 'x-api-key': 'key-123' } })
  t.same(apiKey.json(), { via: 'apiKey' })
  const noCookie = await server.inject({ method: 'POST', url: '/data', headers: { origin: 'https://evil.example', 'x-api-key': 'key-123' } })
  t.same(noCookie.json(), { via: 'apiKey' }, 'API clients without cookies never meet the check')
  const badKey = await server.inject({ method: 'POST', url: '/data', headers: { ...headers, 'x-api-key': 'wrong' } })
  t.equal(badKey.statusCode, 403, 'a refused API key does not turn the cross-site session POST into a pass')
})

t.test('mode "all" with a cross-site session POST → 403; verifySession applies the same check', async (t) => {
  const server = Fastify()
  await server.register(multiauth, {
    session: { secret: SESSION_SECRET, secure: false, findUser },
    apiKey: { verify: (key) => key === 'key-123' ? alice : null }
  })
  server.post('/login', async (request) => { await server.authSessions.login(request, alice); return 'ok' })
  server.post('/both', { onRequest: server.authGuard({ methods: ['session', 'apiKey'], mode: 'all' }) }, async () => 'ok')
  server.post('/verify', { onRequest: server.verifySession }, async (request) => ({ via: request.auth?.method }))
  const cookie = cookieFrom(await server.inject({ method: 'POST', url: '/login' }), 'sid')
  const headers = { cookie, 'x-api-key': 'key-123' }
  t.equal((await server.inject({ method: 'POST', url: '/both', headers: { ...headers, origin: 'https://evil.example' } })).statusCode, 403)
  t.equal((await server.inject({ method: 'POST', url: '/both', headers: { ...headers, 'sec-fetch-site': 'same-origin' } })).statusCode, 200)
  t.equal((await server.inject({ method: 'POST', url: '/verify', headers: { cookie, origin: 'https://evil.example' } })).statusCode, 403)
  t.same((await server.inject({ method: 'POST', url: '/verify', headers: { cookie, 'sec-fetch-site': 'same-origin' } })).json(), { via: 'session' })
})

t.test('trusted origins and csrf: false', async (t) => {
  const trusted = await app({ trustedOrigins: ['https://admin.example'] })
  let cookie = await loggedIn(trusted)
  t.equal((await trusted.inject({ method: 'POST', url: '/data', headers: { cookie, origin: 'https://admin.example', 'sec-fetch-site': 'cross-site' } })).statusCode, 200)
  t.equal((await trusted.inject({ method: 'POST', url: '/data', headers: { cookie, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } })).statusCode, 403)
  const off = await app(false)
  cookie = await loggedIn(off)
  t.equal((await off.inject({ method: 'POST', url: '/data', headers: { cookie, origin: 'https://evil.example' } })).statusCode, 200, 'the check is off (the app brings its own CSRF defence)')
})

t.test('CORS with credentials: @fastify/cors preflight passes; the trusted front end may POST with the cookie', async (t) => {
  const front = 'https://front.example'
  const server = Fastify()
  await server.register(cors, { origin: [front], credentials: true })
  await server.register(multiauth, { session: { secret: SESSION_SECRET, secure: false, findUser, csrf: { trustedOrigins: [front] } } })
  server.post('/login', async (request) => { await server.authSessions.login(request, alice); return 'ok' })
  server.post('/data', { onRequest: server.authGuard(['session']) }, async (request) => ({ user: request.auth?.user ?? null }))
  const cookie = cookieFrom(await server.inject({ method: 'POST', url: '/login' }), 'sid')
  const preflight = await server.inject({
    method: 'OPTIONS', url: '/data', headers: { origin: front, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], front)
  t.equal(preflight.headers['access-control-allow-credentials'], 'true')
  const post = await server.inject({ method: 'POST', url: '/data', headers: { cookie, origin: front, 'sec-fetch-site': 'cross-site' } })
  t.equal(post.statusCode, 200)
  t.equal(post.headers['access-control-allow-origin'], front)
  const other = await server.inject({ method: 'POST', url: '/data', headers: { cookie, origin: 'https://other.example', 'sec-fetch-site': 'cross-site' } })
  t.equal(other.statusCode, 403)
})

t.test('issue 6 acceptance: the same cross-site POST with a bearer token is allowed', async (t) => {
  const server = Fastify()
  await server.register(multiauth, {
    session: { secret: SESSION_SECRET, secure: false, findUser },
    token: { secret: 'a-jwt-secret-of-at-least-32-bytes!!', findUser: (claims) => findUser(claims.sub) }
  })
  server.post('/login', async (request) => { await server.authSessions.login(request, alice); return 'ok' })
  server.post('/data', { onRequest: server.authGuard(['session', 'token']) }, async (request) => ({ via: request.auth?.method }))
  await server.ready()
  const cookie = await loggedIn(server as never)
  const headers = { cookie, origin: 'https://evil.example' }
  t.equal((await server.inject({ method: 'POST', url: '/data', headers })).statusCode, 403, 'cookie alone, foreign Origin → 403')
  const { accessToken } = await server.authTokens.issue(alice)
  const bearer = await server.inject({ method: 'POST', url: '/data', headers: { ...headers, authorization: `Bearer ${accessToken}` } })
  t.equal(bearer.statusCode, 200)
  t.same(bearer.json(), { via: 'token' })
})
