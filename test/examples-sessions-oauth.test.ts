import t from 'tap'
import { start as startSessions } from '../examples/sessions/server.js'
import { start as startOAuth } from '../examples/oauth-login/server.js'
import { CookieJar, runCodeFlow } from './helpers/oidc-provider.js'
import { redisSkipReason } from './helpers/redis.js'

// The examples over real HTTP, driven like a browser without one (the Chromium test does it with one).

t.test('examples/sessions: form login, protected page, CSRF-checked logout', { skip: redisSkipReason() }, async (t) => {
  const server = await startSessions({ port: 0 })
  t.teardown(server.close)
  const jar = new CookieJar()
  const form = { 'content-type': 'application/x-www-form-urlencoded', origin: server.url }
  t.equal((await jar.fetch(`${server.url}/private`)).status, 401)
  const wrong = await jar.fetch(`${server.url}/login`, { method: 'POST', headers: form, body: 'username=alice&password=nope' })
  t.equal(wrong.status, 401)
  const ok = await jar.fetch(`${server.url}/login`, { method: 'POST', headers: form, body: 'username=alice&password=wonderland' })
  t.equal(ok.status, 303)
  t.equal(ok.headers.get('location'), '/private')
  const cookie = jar.header()
  const priv = await jar.fetch(`${server.url}/private`)
  t.equal(priv.status, 200)
  t.match(await priv.text(), /Hello, Alice \(via session\)/)
  t.equal((await jar.fetch(`${server.url}/logout`, { method: 'POST' })).status, 403, 'logout without Origin is refused (CSRF)')
  const out = await jar.fetch(`${server.url}/logout`, { method: 'POST', headers: { origin: server.url } })
  t.equal(out.status, 303)
  t.equal((await fetch(`${server.url}/private`, { headers: { cookie } })).status, 401, 'the old cookie is refused after logout')
})

t.test('examples/oauth-login: code flow against the local provider, protected page, logout', async (t) => {
  const server = await startOAuth({ port: 0 })
  t.teardown(server.close)
  t.equal(server.provider, 'local')
  const jar = new CookieJar()
  const { callback } = await runCodeFlow(jar, `${server.url}/auth/local`, server.issuer as string, { login: 'carol' })
  t.equal(callback.status, 302)
  t.equal(callback.headers.get('location'), '/private')
  const cookie = jar.header()
  const priv = await jar.fetch(`${server.url}/private`)
  t.match(await priv.text(), /Hello, Carol \(via oauth2, provider local\)/)
  t.equal((await jar.fetch(`${server.url}/logout`, { method: 'POST', headers: { origin: server.url } })).status, 303)
  t.equal((await fetch(`${server.url}/private`, { headers: { cookie } })).status, 401)
})
