// Attack cases against the OAuth2 / OpenID Connect login (RFC 9700, RFC 7636, RFC 9207)
// with two REAL oidc-provider instances on 127.0.0.1. Open redirect, tampered state, code
// replay, foreign nonce and login CSRF are in test/oauth2.test.ts; this file adds the
// mix-up between providers, state replay and PKCE downgrade.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth from '../../src/index.js'
import { CookieJar, runCodeFlow, startOidcProvider } from '../helpers/oidc-provider.js'
import type { TestProvider } from '../helpers/oidc-provider.js'
import { freePort } from '../helpers/redis.js'

const SECRET = 'a-session-secret-of-at-least-32-characters'

interface TwoProviders { app: FastifyInstance, base: string, alpha: TestProvider, beta: TestProvider, logins: string[] }

async function twoProviders (t: Test): Promise<TwoProviders> {
  const port = await freePort()
  const base = `http://localhost:${port}`
  const alpha = await startOidcProvider({ redirectUris: [`${base}/auth/alpha/callback`], clientId: 'app-at-alpha' })
  t.teardown(alpha.close)
  const beta = await startOidcProvider({ redirectUris: [`${base}/auth/beta/callback`], clientId: 'app-at-beta' })
  t.teardown(beta.close)
  const logins: string[] = []
  const users = new Map<string, { id: string }>()
  const app = Fastify()
  await app.register(multiauth, {
    session: { secret: SECRET, secure: false, findUser: (id) => users.get(id) ?? null },
    oauth2: {
      baseUrl: base,
      providers: {
        alpha: { issuer: alpha.issuer, clientId: alpha.clientId, clientSecret: alpha.clientSecret },
        beta: { issuer: beta.issuer, clientId: beta.clientId, clientSecret: beta.clientSecret }
      },
      findUser (profile) {
        const user = { id: `${profile.provider}:${profile.id}` }
        logins.push(user.id)
        users.set(user.id, user)
        return user
      }
    }
  })
  app.get('/me', { onRequest: app.authGuard(['oauth2']) }, async (request) => ({ user: request.auth?.user ?? null }))
  await app.listen({ port, host: 'localhost' })
  t.teardown(() => app.close())
  return { app, base, alpha, beta, logins }
}

t.test('[RFC 9700 §4.4 mix-up, RFC 9207] a code from provider alpha delivered to beta\'s callback is refused before any code exchange', async (t) => {
  const { base, alpha, beta, logins } = await twoProviders(t)
  t.equal((await runCodeFlow(new CookieJar(), `${base}/auth/alpha`, alpha.issuer)).callback.status, 302, 'control: an honest alpha login works')
  const exchangesBefore = alpha.tokenRequests() + beta.tokenRequests()
  const jar = new CookieJar()
  const { callback } = await runCodeFlow(jar, `${base}/auth/alpha`, alpha.issuer, {
    editCallbackUrl: (u) => { u.pathname = '/auth/beta/callback' }
  })
  t.equal(callback.status, 401, 'refused')
  t.equal(alpha.tokenRequests() + beta.tokenRequests(), exchangesBefore, 'alpha\'s code (and PKCE verifier) was never sent to beta\'s token endpoint, nor redeemed anywhere')
  t.same(logins, ['alpha:alice'], 'no second login')
  t.equal((await jar.fetch(`${base}/me`)).status, 401, 'no session')
})

t.test('[RFC 9207 §2.4] an authorization response whose iss is another provider is refused before the code exchange', async (t) => {
  const { base, alpha, beta, logins } = await twoProviders(t)
  const jar = new CookieJar()
  let iss: string | null = null
  const { callback } = await runCodeFlow(jar, `${base}/auth/alpha`, alpha.issuer, {
    editCallbackUrl: (u) => { iss = u.searchParams.get('iss'); u.searchParams.set('iss', beta.issuer) }
  })
  t.equal(iss, alpha.issuer, 'the real provider does send iss (RFC 9207)')
  t.equal(callback.status, 401)
  t.equal(alpha.tokenRequests(), 0, 'no code exchange')
  t.same(logins, [])
  const missing = new CookieJar()
  const { callback: noIss } = await runCodeFlow(missing, `${base}/auth/alpha`, alpha.issuer, {
    editCallbackUrl: (u) => { u.searchParams.delete('iss') }
  })
  t.equal(noIss.status, 401, 'iss removed while the provider announces authorization_response_iss_parameter_supported → refused')
  t.equal(alpha.tokenRequests(), 0)
})

t.test('[RFC 9700 §4.7 CSRF, §2.1 state single use] a replayed state (callback repeated with the same cookies and URL) does not log in twice', async (t) => {
  const { base, alpha, logins } = await twoProviders(t)
  const jar = new CookieJar()
  let cookiesAtCallback = ''
  const { callback, callbackUrl } = await runCodeFlow(jar, `${base}/auth/alpha`, alpha.issuer, {
    editCallbackUrl: () => { cookiesAtCallback = jar.header() }
  })
  t.equal(callback.status, 302)
  t.notOk(jar.cookies.has('oauth2-redirect-state'), 'the state cookie is cleared after use')
  // Same state with the browser's cookies after the login: the state cookie is gone.
  const afterLogin = await fetch(callbackUrl, { headers: { cookie: jar.header() }, redirect: 'manual' })
  t.equal(afterLogin.status, 401, 'state replayed after the login → 401')
  // Same state and the cookies captured before: the provider refuses the used code.
  const captured = await fetch(callbackUrl, { headers: { cookie: cookiesAtCallback }, redirect: 'manual' })
  t.equal(captured.status, 401, 'the whole callback replayed → 401')
  t.same(logins, ['alpha:alice'], 'one login only')
  // A state from one browser's flow used with another browser's flow cookie.
  const victim = new CookieJar()
  await victim.fetch(`${base}/auth/alpha`)
  const crossed = await fetch(callbackUrl, { headers: { cookie: victim.header() }, redirect: 'manual' })
  t.equal(crossed.status, 401, 'state of another browser → 401')
})

t.test('[RFC 7636 §4.4-4.6, RFC 9700 §2.1.1] PKCE downgrade: we always send S256; the provider refuses a missing or wrong code_verifier', async (t) => {
  const { base, alpha, logins } = await twoProviders(t)
  const discovery = await (await fetch(`${alpha.issuer}/.well-known/openid-configuration`)).json() as { token_endpoint: string, authorization_endpoint: string }
  const basicAuth = 'Basic ' + Buffer.from(`${alpha.clientId}:${alpha.clientSecret}`).toString('base64')
  const redeem = async (code: string, verifier?: string): Promise<{ status: number, error?: string }> => {
    const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: `${base}/auth/alpha/callback` })
    if (verifier !== undefined) body.set('code_verifier', verifier)
    const res = await fetch(discovery.token_endpoint, { method: 'POST', headers: { authorization: basicAuth, 'content-type': 'application/x-www-form-urlencoded' }, body })
    return { status: res.status, error: ((await res.json()) as { error?: string }).error }
  }

  // 1. Our authorization request: S256, never plain, never absent.
  let challenge: URL | undefined
  let code = ''
  await runCodeFlow(new CookieJar(), `${base}/auth/alpha`, alpha.issuer, {
    editAuthorizeUrl: (u) => { challenge = new URL(u) },
    // Steal the code and hand our app a dummy, to redeem the real one by hand.
    editCallbackUrl: (u) => { code = u.searchParams.get('code') ?? ''; u.searchParams.set('code', 'not-the-code') }
  })
  t.equal(challenge?.searchParams.get('code_challenge_method'), 'S256')
  t.ok(code.length > 0, 'a code was issued')
  // 2. An attacker holding the code but not the verifier.
  t.same(await redeem(code), { status: 400, error: 'invalid_grant' }, 'no code_verifier → invalid_grant')
  // 3. The code is consumed by the failed attempt or still bound to the challenge; a wrong verifier fails too.
  t.equal((await redeem(code, 'a'.repeat(43))).status, 400, 'a wrong code_verifier → 400')

  // 4. Downgraded authorization requests: no challenge, or method plain.
  for (const [what, edit] of [
    ['no code_challenge', (u: URL) => { u.searchParams.delete('code_challenge'); u.searchParams.delete('code_challenge_method') }],
    ['code_challenge_method=plain', (u: URL) => { u.searchParams.set('code_challenge_method', 'plain') }]
  ] as const) {
    const jar = new CookieJar()
    const start = await jar.fetch(`${base}/auth/alpha`)
    const authorize = new URL(start.headers.get('location') as string)
    edit(authorize)
    const res = await jar.fetch(authorize.href)
    const location = new URL(res.headers.get('location') ?? 'http://none/', authorize)
    t.equal(location.searchParams.get('error'), 'invalid_request', `${what}: the provider refuses the authorization request`)
    t.equal(location.searchParams.get('code'), null, `${what}: no code`)
  }

  // 5. Our own callback without the verifier cookie: no code exchange without a verifier.
  const jar = new CookieJar()
  const before = alpha.tokenRequests()
  const { callback } = await runCodeFlow(jar, `${base}/auth/alpha`, alpha.issuer, {
    editCallbackUrl: () => { jar.cookies.delete('oauth2-code-verifier') }
  })
  t.equal(callback.status, 401, 'callback without the verifier cookie → 401')
  t.ok(alpha.tokenRequests() - before <= 1, 'at most one (refused) exchange')
  t.same(logins, [], 'never a login')
})
