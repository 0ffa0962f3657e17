import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth from '../src/index.js'
import type { MultiauthOptions, OAuth2Options, OAuth2Profile, OAuth2Tokens } from '../src/index.js'
import { resolveProvider } from '../src/methods/oauth2/index.js'
import { CookieJar, runCodeFlow, startOidcProvider } from './helpers/oidc-provider.js'
import type { TestProvider } from './helpers/oidc-provider.js'
import { freePort } from './helpers/redis.js'

const SECRET = 'a-session-secret-of-at-least-32-characters'

interface Harness {
  app: FastifyInstance
  base: string
  provider: TestProvider
  logins: Array<{ profile: OAuth2Profile, tokens: OAuth2Tokens }>
}

/** A real provider on 127.0.0.1 and the app on localhost (two sites, as in production). */
async function harness (t: Test, oauth2: Partial<OAuth2Options> = {}): Promise<Harness> {
  const port = await freePort()
  const base = `http://localhost:${port}`
  const provider = await startOidcProvider({ redirectUris: [`${base}/auth/local/callback`] })
  t.teardown(provider.close)
  const logins: Harness['logins'] = []
  const users = new Map<string, { id: string, email: string }>()
  const app = Fastify()
  await app.register(multiauth, {
    session: { secret: SECRET, secure: false, findUser: (id) => users.get(id) ?? null },
    oauth2: {
      baseUrl: base,
      providers: { local: { issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret } },
      allowedRedirects: ['/account'],
      findUser (profile, tokens) {
        logins.push({ profile, tokens })
        const user = { id: `local:${profile.id}`, email: profile.email ?? '' }
        users.set(user.id, user)
        return user
      },
      ...oauth2
    }
  })
  app.get('/me', { onRequest: app.authGuard(['session']) }, async (request) => ({ user: request.auth?.user ?? null, auth: request.auth }))
  app.post('/password-login', async (request) => {
    const user = { id: 'local:pw', email: 'pw@example.test' }
    users.set(user.id, user)
    await app.authSessions.login(request, user)
    return 'ok'
  })
  app.get('/oauth-only', { onRequest: app.authGuard(['oauth2']) }, async (request) => ({ method: request.auth?.method }))
  await app.listen({ port, host: 'localhost' })
  t.teardown(() => app.close())
  return { app, base, provider, logins }
}

t.test('full code flow with PKCE ends in a session for the mapped user', async (t) => {
  const { base, provider, logins } = await harness(t)
  const jar = new CookieJar()
  let authorize: URL | undefined
  const { callback, callbackUrl } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer, { editAuthorizeUrl: (u) => { authorize = u } })
  t.equal(authorize?.searchParams.get('code_challenge_method'), 'S256', 'PKCE S256')
  t.match(authorize?.searchParams.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/)
  t.equal(authorize?.searchParams.get('scope'), 'openid email profile', 'minimal default scopes')
  t.ok(authorize?.searchParams.get('state'), 'state sent')
  t.ok(authorize?.searchParams.get('nonce'), 'nonce sent')
  t.ok(callbackUrl.searchParams.get('code'), 'the provider returned a code')
  t.equal(callback.status, 302, await callback.text())
  t.equal(callback.headers.get('location'), '/', 'fixed redirect after login')

  t.equal(logins.length, 1)
  t.equal(logins[0]?.profile.id, 'alice')
  t.equal(logins[0]?.profile.email, 'alice@example.test', 'profile completed from userinfo')
  t.equal(logins[0]?.profile.emailVerified, true)
  t.equal(logins[0]?.profile.claims.iss, provider.issuer)
  t.type(logins[0]?.tokens.access_token, 'string')

  const me = await jar.fetch(`${base}/me`)
  t.equal(me.status, 200)
  const body = await me.json() as { user: { id: string }, auth: { method: string, provider: string } }
  t.equal(body.user.id, 'local:alice')
  // The method is the guard method that admitted the request; the provider says how the session began.
  t.equal(body.auth.method, 'session', 'authGuard([\'session\']) reports a session begun by OAuth as method session')
  t.equal(body.auth.provider, 'local', '... with the provider it began with')
  const only = await jar.fetch(`${base}/oauth-only`)
  t.same(await only.json(), { method: 'oauth2' }, 'authGuard([\'oauth2\']) reports it as method oauth2')
  const cookies = [...jar.cookies.keys()]
  t.notOk(cookies.some((c) => /oauth2|multiauth/.test(c)), `flow cookies cleared (left: ${cookies.join(', ')})`)
  t.notOk(jar.header().includes(logins[0]?.tokens.access_token as string), 'provider tokens are not in any cookie')
})

t.test('authGuard([\'oauth2\']) refuses a session started by authSessions.login(); [\'session\'] reports it as "session"', async (t) => {
  const { base } = await harness(t)
  const jar = new CookieJar()
  t.equal((await jar.fetch(`${base}/password-login`, { method: 'POST' })).status, 200)
  t.equal((await jar.fetch(`${base}/oauth-only`)).status, 401)
  const me = await (await jar.fetch(`${base}/me`)).json() as { auth: { method: string, provider?: string } }
  t.equal(me.auth.method, 'session')
  t.equal(me.auth.provider, undefined)
})

t.test('allowed ?next= is honoured; any other is a 400 (no open redirect)', async (t) => {
  const { base, provider } = await harness(t)
  const jar = new CookieJar()
  const { callback } = await runCodeFlow(jar, `${base}/auth/local?next=/account`, provider.issuer)
  t.equal(callback.headers.get('location'), '/account')
  for (const next of ['https://evil.example/', '//evil.example', '/\\evil.example', '/other']) {
    const response = await new CookieJar().fetch(`${base}/auth/local?next=${encodeURIComponent(next)}`)
    t.equal(response.status, 400, next)
  }
})

t.test('tampered state → 401, no session', async (t) => {
  const { base, provider, logins } = await harness(t)
  const jar = new CookieJar()
  const { callback } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer, {
    editCallbackUrl: (u) => { u.searchParams.set('state', 'tampered' + (u.searchParams.get('state') ?? '')) }
  })
  t.equal(callback.status, 401)
  t.match(await callback.json(), { code: 'FST_MULTIAUTH_CREDENTIALS_INVALID', message: 'Invalid credentials' })
  t.equal(logins.length, 0)
  t.equal((await jar.fetch(`${base}/me`)).status, 401)
})

t.test('a replayed code is refused by the provider → 401', async (t) => {
  const { base, provider, logins } = await harness(t)
  const jar = new CookieJar()
  // Keep the cookies the callback request carried, to replay exactly that request.
  let replayCookies = ''
  const { callback, callbackUrl } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer, {
    editCallbackUrl: () => { replayCookies = jar.header() }
  })
  t.equal(callback.status, 302)
  const replay = await fetch(callbackUrl, { headers: { cookie: replayCookies }, redirect: 'manual' })
  t.equal(replay.status, 401)
  t.equal(logins.length, 1, 'findUser ran for the first use only')
  t.equal(provider.grantErrors.at(-1), 'invalid_grant', 'the provider refused the second exchange')
  t.notOk(replay.headers.getSetCookie().some((c) => c.startsWith('sid=') && !/Expires=Thu, 01 Jan 1970/i.test(c)), 'no session cookie issued')
})

t.test('a nonce that is not this browser\'s → 401', async (t) => {
  const { base, provider, logins } = await harness(t)
  const jar = new CookieJar()
  const { callback } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer, {
    editAuthorizeUrl: (u) => { u.searchParams.set('nonce', 'attacker-chosen-nonce') }
  })
  t.equal(callback.status, 401)
  t.equal(logins.length, 0)
  t.equal((await jar.fetch(`${base}/me`)).status, 401)
})

t.test('an id_token signed by a key the provider does not publish → 401', async (t) => {
  const { base, provider, logins } = await harness(t)
  provider.serveForeignJwks(true)
  const jar = new CookieJar()
  const { callback } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer)
  t.equal(callback.status, 401)
  t.equal(logins.length, 0)
})

t.test('a callback without the flow cookie (login CSRF) or with error= → 401', async (t) => {
  const { base, provider } = await harness(t)
  const jar = new CookieJar()
  const { callback } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer, {
    editCallbackUrl: () => { jar.cookies.clear() }
  })
  t.equal(callback.status, 401)
  const denied = await fetch(`${base}/auth/local/callback?error=access_denied&state=x`, { redirect: 'manual' })
  t.equal(denied.status, 401)
})

t.test('findUser returning nothing refuses the login', async (t) => {
  const { base, provider } = await harness(t, { findUser: () => null })
  const jar = new CookieJar()
  const { callback } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer)
  t.equal(callback.status, 401)
  t.equal((await jar.fetch(`${base}/me`)).status, 401)
})

t.test('presets and option checks', async (t) => {
  const google = resolveProvider('google', { preset: 'google', clientId: 'id', clientSecret: 's' })
  t.same(google, { kind: 'oidc', issuer: 'https://accounts.google.com', clientId: 'id', clientSecret: 's', scope: ['openid', 'email', 'profile'] })
  const github = resolveProvider('github', { preset: 'github', clientId: 'id', clientSecret: 's' })
  t.same(github.scope, ['read:user', 'user:email'])
  t.equal(github.kind, 'github')
  t.throws(() => resolveProvider('x', { clientId: 'id', clientSecret: 's' }), /issuer must be a non-empty string/)
  t.throws(() => resolveProvider('x', { issuer: 'http://idp.example', clientId: 'id', clientSecret: 's' }), /https/)
  t.throws(() => resolveProvider('x', { issuer: 'https://idp.example', clientId: 'id', clientSecret: 's', scope: ['email'] }), /openid/)
  t.throws(() => resolveProvider('Bad/Name', { issuer: 'https://idp.example', clientId: 'id', clientSecret: 's' }), /provider names/)

  const findUser = (): null => null
  const register = async (options: MultiauthOptions): Promise<void> => { await Fastify().register(multiauth, options).ready() }
  await t.rejects(register({ oauth2: { baseUrl: 'http://localhost:1', providers: { gh: { preset: 'github', clientId: 'a', clientSecret: 'b' } }, findUser } }), /needs the session option/)
  const session = { secret: SECRET, secure: false, findUser: () => null }
  await t.rejects(register({ session, oauth2: { baseUrl: 'http://localhost:1/path', providers: { gh: { preset: 'github', clientId: 'a', clientSecret: 'b' } }, findUser } }), /origin/)
  await t.rejects(register({ session, oauth2: { baseUrl: 'http://localhost:1', redirect: '//evil.example', providers: { gh: { preset: 'github', clientId: 'a', clientSecret: 'b' } }, findUser } }), /local path/)
})

t.test('GitHub preset: start route sends state, PKCE S256 and minimal scopes to github.com', async (t) => {
  const app = Fastify()
  await app.register(multiauth, {
    session: { secret: SECRET, secure: false, findUser: () => null },
    oauth2: { baseUrl: 'https://app.example', providers: { github: { preset: 'github', clientId: 'gh-id', clientSecret: 'gh-secret' } }, findUser: () => null }
  })
  const response = await app.inject('/auth/github')
  t.equal(response.statusCode, 302)
  const location = new URL(response.headers.location as string)
  t.equal(location.origin + location.pathname, 'https://github.com/login/oauth/authorize')
  t.equal(location.searchParams.get('code_challenge_method'), 'S256')
  t.equal(location.searchParams.get('scope'), 'read:user user:email')
  t.equal(location.searchParams.get('redirect_uri'), 'https://app.example/auth/github/callback')
  t.equal(location.searchParams.get('nonce'), null, 'no nonce: GitHub is not OpenID Connect')
  const cookies = response.cookies.map((c) => c.name)
  t.ok(cookies.includes('__Host-oauth2-redirect-state'), 'state cookie is __Host- prefixed over https')
  t.ok(cookies.includes('__Host-multiauth-oauth2'), 'so is the nonce cookie')
  t.ok(response.cookies.every((c) => c.secure === true && c.path === '/'), 'flow cookies are Secure, Path=/')
  t.ok(response.cookies.every((c) => c.httpOnly === true && c.sameSite === 'Lax'), 'flow cookies are HttpOnly, SameSite=Lax')
  await app.close()
})
