import t from 'tap'
import type { Test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { MemoryStore, MULTIAUTH_CHANNELS, OAUTH2_REFUSAL_REASONS, RedisStore, generateApiKey } from '../src/index.js'
import type { MultiauthEventName, MultiauthOptions, MultiauthStore, MultiauthUser } from '../src/index.js'
import { basicHeader, buildApp } from './helpers/app.js'
import { bearer } from './helpers/tokens.js'
import { cookieFrom, sessionApp } from './helpers/session-app.js'
import { CookieJar, runCodeFlow, startOidcProvider } from './helpers/oidc-provider.js'
import { freePort } from './helpers/redis.js'
import { eachTopology } from './helpers/redis-topology.js'

// The token, session, OAuth2 and API-key events (src/core/events.ts) driven through real apps:
// payloads exact, published only once the state change they report succeeded, and never a
// credential in them: every credential carries MARK (or is checked by its own value).
const MARK = 'mk7canaryq'
const PASSWORD = `pw-${MARK}`
const JWT_SECRET = `jwt-secret-${MARK}-0123456789abcdef`
const SESSION_SECRET = `session-secret-${MARK}-0123456789abcdef`
const FLOW_EVENTS: readonly MultiauthEventName[] = [
  'token:issued', 'token:refreshed', 'token:refresh-reused', 'token:revoked', 'token:revoked-all',
  'session:login', 'session:logout', 'session:expired', 'oauth2:login', 'oauth2:refused', 'api-key:used'
]

interface Seen { name: MultiauthEventName, payload: Record<string, unknown> }

interface Collected {
  /** Everything published on any channel during the test, in order. */
  all: Seen[]
  /** The events of this file's flows since the last `take()` (the guard's authenticated/refused events are left out). */
  take: () => Seen[]
}

/** Subscribes to every channel for the rest of the test. */
function collect (t: Test): Collected {
  const all: Seen[] = []
  let taken = 0
  for (const [name, channelName] of Object.entries(MULTIAUTH_CHANNELS) as Array<[MultiauthEventName, string]>) {
    const listener = (message: unknown): void => { all.push({ name, payload: message as Record<string, unknown> }) }
    subscribe(channelName, listener)
    t.teardown(() => { unsubscribe(channelName, listener) })
  }
  return {
    all,
    take () {
      const since = all.slice(taken)
      taken = all.length
      return since.filter((event) => FLOW_EVENTS.includes(event.name))
    }
  }
}

/** No payload of any channel holds MARK or any of `secrets` (whole tokens, their secret halves, cookies, keys). */
function noCredentials (t: Test, seen: Seen[], secrets: string[]): void {
  t.ok(seen.length > 0, 'events were published')
  const leaks = seen.filter(({ payload }) => {
    const json = JSON.stringify(payload)
    return json.includes(MARK) || secrets.some((secret) => secret.length > 0 && json.includes(secret))
  })
  t.same(leaks, [], `no credential in any of ${seen.length} payloads`)
}

function jwtClaims (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>
}

const ANN = { id: 'ann' }

async function tokenApp (store?: MultiauthStore): Promise<FastifyInstance> {
  const app = await buildApp({
    basic: { verify: (username, password) => username === 'ann' && password === PASSWORD ? ANN : null },
    rateLimit: false,
    ...(store === undefined ? {} : { store }),
    token: {
      secret: JWT_SECRET,
      // A claim holding MARK: an event that copied the claims would show it.
      claims: (user) => ({ sub: user === ANN ? 'ann' : 'nobody', note: MARK }),
      findUser: (claims) => claims.sub === 'ann' ? ANN : null,
      refresh: true,
      revocation: true,
      routes: true
    }
  }, { requestIdHeader: 'x-request-id' })
  app.get('/me', { onRequest: app.authGuard(['token']) }, async () => ({ ok: true }))
  return app
}

interface Tokens { access_token: string, refresh_token: string }

async function login (app: FastifyInstance, requestId: string): Promise<Tokens> {
  const res = await app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader('ann', PASSWORD), 'x-request-id': requestId } })
  if (res.statusCode !== 200) throw new Error(`login: ${res.statusCode} ${res.body}`)
  return res.json()
}

const family = (refreshToken: string): string => refreshToken.split('.')[0] ?? ''
const at = (requestId: string, route: string): Record<string, unknown> => ({ requestId, route, ip: '127.0.0.1' })

t.test('token flow: issued, refreshed, refresh-reused, revoked (access and refresh), revoked-all', async (t) => {
  const seen = collect(t)
  const app = await tokenApp()
  t.teardown(() => app.close())

  const first = await login(app, 'login-1')
  t.same(seen.take(), [{ name: 'token:issued', payload: { ...at('login-1', '/tokens'), userId: 'ann', jti: jwtClaims(first.access_token).jti, familyId: family(first.refresh_token) } }])
  t.equal((await app.inject({ url: '/me', headers: bearer(first.access_token) })).statusCode, 200)

  seen.take()
  const refreshed = await app.inject({ method: 'POST', url: '/tokens/refresh', headers: { 'x-request-id': 'refresh-1' }, payload: { refresh_token: first.refresh_token } })
  t.equal(refreshed.statusCode, 200)
  const second = refreshed.json<Tokens>()
  t.same(seen.take(), [{ name: 'token:refreshed', payload: { ...at('refresh-1', '/tokens/refresh'), userId: 'ann', familyId: family(first.refresh_token), jti: jwtClaims(second.access_token).jti } }],
    'one event for the rotation, none of them token:issued')

  seen.take()
  const replay = await app.inject({ method: 'POST', url: '/tokens/refresh', headers: { 'x-request-id': 'replay-1' }, payload: { refresh_token: first.refresh_token } })
  t.equal(replay.statusCode, 400)
  t.same(seen.take(), [{ name: 'token:refresh-reused', payload: { ...at('replay-1', '/tokens/refresh'), userId: 'ann', familyId: family(first.refresh_token) } }])
  t.equal((await app.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: second.refresh_token } })).statusCode, 400, 'the family is gone')
  t.same(seen.take(), [], 'a refresh token of a revoked family is unknown, not a reuse')

  const third = await login(app, 'login-2')
  seen.take()
  const revoked = await app.inject({ method: 'POST', url: '/tokens/revoke', headers: { ...bearer(third.access_token), 'x-request-id': 'logout-1' }, payload: { token: third.refresh_token } })
  t.equal(revoked.statusCode, 200)
  t.same(seen.take(), [
    { name: 'token:revoked', payload: { ...at('logout-1', '/tokens/revoke'), userId: 'ann', kind: 'access', jti: jwtClaims(third.access_token).jti } },
    { name: 'token:revoked', payload: { ...at('logout-1', '/tokens/revoke'), userId: 'ann', kind: 'refresh', familyId: family(third.refresh_token) } }
  ])
  seen.take()
  t.equal((await app.inject({ method: 'POST', url: '/tokens/revoke', payload: { token: third.refresh_token } })).statusCode, 200)
  t.same(seen.take(), [], 'revoking a family that is already gone reports nothing')

  const fourth = await login(app, 'login-3')
  seen.take()
  const everywhere = await app.inject({ method: 'POST', url: '/tokens/revoke', headers: { ...bearer(fourth.access_token), 'x-request-id': 'logout-all' }, payload: { all: true } })
  t.equal(everywhere.statusCode, 200)
  t.same(seen.take(), [
    { name: 'token:revoked', payload: { ...at('logout-all', '/tokens/revoke'), userId: 'ann', kind: 'access', jti: jwtClaims(fourth.access_token).jti } },
    { name: 'token:revoked-all', payload: { ...at('logout-all', '/tokens/revoke'), userId: 'ann' } }
  ])

  // The helpers without a request: the same events, without request fields.
  seen.take()
  const issued = await app.authTokens.issue(ANN)
  await app.authTokens.revoke(jwtClaims(issued.accessToken))
  await app.authTokens.revokeAll('ann')
  t.same(seen.take(), [
    { name: 'token:issued', payload: { userId: 'ann', jti: jwtClaims(issued.accessToken).jti, familyId: family(issued.refreshToken ?? '') } },
    { name: 'token:revoked', payload: { userId: 'ann', kind: 'access', jti: jwtClaims(issued.accessToken).jti } },
    { name: 'token:revoked-all', payload: { userId: 'ann' } }
  ])

  const tokens = [first, second, third, fourth].flatMap((pair) => [pair.access_token, pair.refresh_token, pair.refresh_token.split('.')[1] ?? ''])
  noCredentials(t, seen.all, [...tokens, issued.accessToken, issued.refreshToken ?? '', basicHeader('ann', PASSWORD)])
})

eachTopology(t, 'token events come only after the store write: a revocation Redis refused reports nothing', async (t, redis) => {
  const store = new RedisStore(redis.storeOptions({ commandTimeout: 500 }))
  const app = await tokenApp(store)
  t.teardown(() => app.close())
  const seen = collect(t)
  const tokens = await login(app, 'login-r')
  t.same(seen.take().map((e) => e.name), ['token:issued'])

  await redis.down()
  seen.take()
  const revoke = await app.inject({ method: 'POST', url: '/tokens/revoke', headers: bearer(tokens.access_token), payload: { token: tokens.refresh_token, all: true } })
  t.equal(revoke.statusCode, 503, 'the store is down')
  const replay = await app.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: tokens.refresh_token } })
  t.equal(replay.statusCode, 503)
  await t.rejects(app.authTokens.revokeAll('ann'), { code: 'FST_MULTIAUTH_STORE_UNAVAILABLE' })
  t.same(seen.take(), [], 'no token:revoked, token:revoked-all or token:refreshed for writes that failed')
})

t.test('session flow: login, logout, expiry past the absolute timeout', async (t) => {
  const realNow = Date.now
  let now = realNow()
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  const seen = collect(t)
  const users = new Map([['u1', { id: 'u1', name: 'Una' }]])
  const app = await sessionApp(users, {
    session: { secret: SESSION_SECRET, absoluteTimeout: '1h' },
    server: { requestIdHeader: 'x-request-id' }
  })
  t.teardown(() => app.close())

  const loggedIn = await app.inject({ method: 'POST', url: '/login', headers: { 'x-request-id': 'in-1' }, payload: { id: 'u1' } })
  const cookie = cookieFrom(loggedIn, 'sid') as string
  t.ok(cookie)
  t.same(seen.take(), [{ name: 'session:login', payload: { ...at('in-1', '/login'), userId: 'u1' } }], 'no provider: not an OAuth2 login')
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
  const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie, 'x-request-id': 'out-1' } })
  t.equal(out.statusCode, 200)
  t.same(seen.take(), [{ name: 'session:logout', payload: { ...at('out-1', '/logout'), userId: 'u1' } }])
  t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 200)
  t.same(seen.take(), [], 'a logout without a logged-in session reports nothing')

  const again = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid') as string
  seen.take()
  now += 3_600_001
  const late = await app.inject({ url: '/me', headers: { cookie: again, 'x-request-id': 'late-1' } })
  t.equal(late.statusCode, 401)
  t.same(seen.take(), [{ name: 'session:expired', payload: { ...at('late-1', '/me'), userId: 'u1', reason: 'absolute' } }])
  t.equal((await app.inject({ url: '/me', headers: { cookie: again } })).statusCode, 401)
  t.same(seen.take(), [], 'the expired session was destroyed: the next request has none to expire')

  const cookieValues = [cookie, again].map((c) => c.slice(c.indexOf('=') + 1))
  noCredentials(t, seen.all, [...cookieValues, ...cookieValues.map((v) => decodeURIComponent(v).split('.')[0] ?? '')])
})

interface OAuthHarness { base: string, issuer: string, close: () => Promise<void> }

/** A real OpenID Connect provider and the app on localhost, as in test/oauth2.test.ts. */
async function oauthApp (t: Test, findUser: NonNullable<MultiauthOptions['oauth2']>['findUser']): Promise<OAuthHarness & { app: FastifyInstance }> {
  const port = await freePort()
  const base = `http://localhost:${port}`
  const provider = await startOidcProvider({ redirectUris: [`${base}/auth/local/callback`], clientSecret: `client-secret-${MARK}` })
  t.teardown(provider.close)
  const users = new Map<string, MultiauthUser>()
  const app = Fastify()
  await app.register(multiauth, {
    session: { secret: SESSION_SECRET, secure: false, findUser: (id) => users.get(id) ?? null },
    oauth2: {
      baseUrl: base,
      providers: { local: { issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret } },
      allowedRedirects: ['/account'],
      findUser: async (profile, tokens, request) => {
        const user = await findUser(profile, tokens, request)
        if (user) users.set(`local:${profile.id}`, user)
        return user
      }
    }
  })
  await app.listen({ port, host: 'localhost' })
  t.teardown(() => app.close())
  return { app, base, issuer: provider.issuer, close: provider.close }
}

t.test('OAuth2: a login reports session:login with its provider and oauth2:login; every refusal its fixed reason', async (t) => {
  const seen = collect(t)
  const { base, issuer, close } = await oauthApp(t, (profile) => ({ id: `local:${profile.id}` }))
  const secrets: string[] = []
  const refusals: Seen[] = []
  /** The events since the last call, as refusal reasons (kept for the checks at the end). */
  const reasons = (): unknown[] => seen.take().map((e) => {
    refusals.push(e)
    return e.name === 'oauth2:refused' ? e.payload.reason : e.name
  })

  const jar = new CookieJar()
  const { callback, callbackUrl } = await runCodeFlow(jar, `${base}/auth/local`, issuer)
  t.equal(callback.status, 302)
  secrets.push(callbackUrl.searchParams.get('code') ?? '', callbackUrl.searchParams.get('state') ?? '', ...jar.cookies.values())
  const [sessionLogin, oauthLogin, ...rest] = seen.take()
  t.same(rest, [])
  t.match(sessionLogin, { name: 'session:login', payload: { requestId: String, route: '/auth/local/callback', ip: String, userId: 'local:alice', provider: 'local' } })
  t.match(oauthLogin, { name: 'oauth2:login', payload: { requestId: sessionLogin?.payload.requestId, route: '/auth/local/callback', ip: sessionLogin?.payload.ip, provider: 'local', userId: 'local:alice' } })
  t.same(Object.keys(oauthLogin?.payload ?? {}).sort(), ['ip', 'provider', 'requestId', 'route', 'userId'])

  seen.take()
  // A replayed code (the provider refuses it), then each refusal the callback decides itself.
  let replayCookies = ''
  const replayJar = new CookieJar()
  const second = await runCodeFlow(replayJar, `${base}/auth/local`, issuer, { editCallbackUrl: () => { replayCookies = replayJar.header() } })
  t.equal(second.callback.status, 302)
  seen.take()
  t.equal((await fetch(second.callbackUrl, { headers: { cookie: replayCookies }, redirect: 'manual' })).status, 401)
  t.same(reasons(), ['code-refused'])

  seen.take()
  const tampered = await runCodeFlow(new CookieJar(), `${base}/auth/local`, issuer, {
    editCallbackUrl: (u) => { u.searchParams.set('state', `${MARK}${u.searchParams.get('state') ?? ''}`) }
  })
  t.equal(tampered.callback.status, 401)
  t.same(reasons(), ['state'])

  seen.take()
  const nonce = await runCodeFlow(new CookieJar(), `${base}/auth/local`, issuer, { editAuthorizeUrl: (u) => { u.searchParams.set('nonce', MARK) } })
  t.equal(nonce.callback.status, 401)
  t.same(reasons(), ['nonce'])

  seen.take()
  const issMixUp = await runCodeFlow(new CookieJar(), `${base}/auth/local`, issuer, { editCallbackUrl: (u) => { u.searchParams.set('iss', `https://${MARK}.example`) } })
  t.equal(issMixUp.callback.status, 401)
  t.same(reasons(), ['mix-up'])

  seen.take()
  const flowCookie = { cookie: `multiauth-oauth2=other.${MARK}.-1` }
  const statuses = [
    (await fetch(`${base}/auth/local/callback?error=access_denied${MARK}&state=${MARK}`, { redirect: 'manual' })).status,
    (await fetch(`${base}/auth/local/callback?state=${MARK}`, { redirect: 'manual' })).status,
    (await fetch(`${base}/auth/local/callback?code=${MARK}&state=${MARK}`, { redirect: 'manual' })).status,
    (await fetch(`${base}/auth/local/callback?code=${MARK}&state=${MARK}`, { headers: flowCookie, redirect: 'manual' })).status,
    (await fetch(`${base}/auth/local?next=/${MARK}`, { redirect: 'manual' })).status
  ]
  t.same(statuses, [401, 401, 401, 401, 400])
  t.same(reasons(), ['provider-denied', 'missing-code', 'no-flow', 'mix-up', 'redirect'])
  const denied = refusals.find((e) => e.payload.reason === 'provider-denied')
  t.same(Object.keys(denied?.payload ?? {}).sort(), ['ip', 'provider', 'reason', 'requestId', 'route'])
  t.match(denied?.payload, { route: '/auth/local/callback', provider: 'local', reason: 'provider-denied' })

  // The provider gone between the authorization and the code exchange: a 502, reported as provider-error.
  seen.take()
  const down = await runCodeFlow(new CookieJar(), `${base}/auth/local`, issuer, { editCallbackUrl: () => { void close() } })
  t.equal(down.callback.status, 502)
  t.same(reasons(), ['provider-error'])
  t.equal(refusals.length, 10, 'one event per refusal')
  t.ok(refusals.every((e) => e.name === 'oauth2:refused' && (OAUTH2_REFUSAL_REASONS as readonly unknown[]).includes(e.payload.reason)), 'reasons from the documented list')
  noCredentials(t, seen.all, secrets)
})

t.test('OAuth2: the provider\'s id_token refused, and findUser refusing the identity', async (t) => {
  const seen = collect(t)
  const { base, issuer } = await oauthApp(t, () => null)
  const refused = await runCodeFlow(new CookieJar(), `${base}/auth/local`, issuer)
  t.equal(refused.callback.status, 401)
  t.same(seen.take().map((e) => [e.name, e.payload.reason]), [['oauth2:refused', 'no-user']], 'no session:login, no oauth2:login')
})

t.test('OAuth2: an id_token signed with a key the provider does not publish is reason id-token', async (t) => {
  const port = await freePort()
  const base = `http://localhost:${port}`
  const provider = await startOidcProvider({ redirectUris: [`${base}/auth/local/callback`] })
  t.teardown(provider.close)
  const app = Fastify()
  await app.register(multiauth, {
    session: { secret: SESSION_SECRET, secure: false, findUser: () => null },
    oauth2: { baseUrl: base, providers: { local: { issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret } }, findUser: () => ({ id: 'x' }) }
  })
  await app.listen({ port, host: 'localhost' })
  t.teardown(() => app.close())
  const seen = collect(t)
  provider.serveForeignJwks(true)
  const { callback } = await runCodeFlow(new CookieJar(), `${base}/auth/local`, provider.issuer)
  t.equal(callback.status, 401)
  t.same(seen.take().map((e) => [e.name, e.payload.reason]), [['oauth2:refused', 'id-token']])
})

t.test('api-key:used: every request whose key passed its checks, with key id and environment, never the key', async (t) => {
  const seen = collect(t)
  const made = generateApiKey({ prefix: MARK, environment: 'live' })
  const records = new Map([[made.id, { user: { id: 'svc-1' }, hash: made.hash, scopes: ['orders:read'] }]])
  const app = await buildApp({ apiKey: { prefix: MARK, findKey: (id) => records.get(id) ?? null }, rateLimit: false }, { requestIdHeader: 'x-request-id' })
  app.get('/orders', { onRequest: app.authGuard({ methods: ['apiKey'], scopes: ['orders:read'] }) }, async () => ({ ok: true }))
  app.get('/admin', { onRequest: app.authGuard({ methods: ['apiKey'], scopes: ['admin'] }) }, async () => ({ ok: true }))
  t.teardown(() => app.close())

  const used = (requestId: string, route: string): Seen => ({ name: 'api-key:used', payload: { ...at(requestId, route), keyId: made.id, environment: 'live', userId: 'svc-1' } })
  t.equal((await app.inject({ url: '/orders', headers: { 'x-api-key': made.key, 'x-request-id': 'k-1' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/admin', headers: { 'x-api-key': made.key, 'x-request-id': 'k-2' } })).statusCode, 403)
  t.same(seen.take(), [used('k-1', '/orders'), used('k-2', '/admin')], 'the key was used in both, though the second request lacked a scope')

  const typo = made.key.slice(0, -1) + (made.key.endsWith('a') ? 'b' : 'a')
  const unknown = generateApiKey({ prefix: MARK, environment: 'live' })
  t.equal((await app.inject({ url: '/orders', headers: { 'x-api-key': typo } })).statusCode, 401)
  t.equal((await app.inject({ url: '/orders', headers: { 'x-api-key': unknown.key } })).statusCode, 401)
  t.same(seen.take(), [], 'no api-key:used for a refused key')
  noCredentials(t, seen.all, [made.key, unknown.key, made.hash])

  // A key checked by apiKey.verify has no id: no api-key:used.
  const plain = await buildApp({ apiKey: { verify: (key) => key === made.key ? { id: 'svc-1' } : null }, rateLimit: false })
  plain.get('/', { onRequest: plain.authGuard(['apiKey']) }, async () => 'ok')
  t.teardown(() => plain.close())
  seen.take()
  t.equal((await plain.inject({ url: '/', headers: { 'x-api-key': made.key } })).statusCode, 200)
  t.same(seen.take(), [])
})

t.test('nobody subscribed: the flows work as before', async (t) => {
  const app = await tokenApp(new MemoryStore())
  t.teardown(() => app.close())
  const tokens = await login(app, 'quiet')
  const refreshed = await app.inject({ method: 'POST', url: '/tokens/refresh', payload: { refresh_token: tokens.refresh_token } })
  t.equal(refreshed.statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/tokens/revoke', headers: bearer(refreshed.json<Tokens>().access_token), payload: { all: true } })).statusCode, 200)
  t.equal((await app.inject({ url: '/me', headers: bearer(refreshed.json<Tokens>().access_token) })).statusCode, 401)
})
