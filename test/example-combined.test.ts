import t from 'tap'
import { runFlow, startExample, statuses } from './helpers/example-process.js'

// Several methods in one service as a real process over real HTTP: any-of, roles, mode 'all',
// API keys in the header and in the query string.

const basic = (user: string, password: string): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')
const ALICE_KEY = 'abc123def456'
const BOB_KEY = 'ghi789jkl012'

t.test('examples/combined over real HTTP', async (t) => {
  const { base, curl, flow } = await startExample(t, 'combined')
  t.match(curl, /^curl -s -H 'X-API-Key: abc123def456' http:\/\/127\.0\.0\.1:\d+\/me -w ' HTTP %\{http_code\}\\n'$/, 'prints a ready curl line')
  const out = await runFlow(flow, process.cwd())
  t.same(statuses(out), [200, 200, 403, 200], 'the printed curl lines, run as printed: /me, /data?api_key=, bob on /admin, /transfer')
  const call = async (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number, body: any, challenge: string | null }> => {
    const res = await fetch(base + path, { method, headers })
    return { status: res.status, body: await res.json(), challenge: res.headers.get('www-authenticate') }
  }

  // /data: the key in the header or the query string
  t.same((await call('/data', { 'x-api-key': ALICE_KEY })).body, { data: 'Here\'s your protected data!' }, 'API key in the header')
  t.same((await call(`/data?api_key=${BOB_KEY}`)).body, { data: 'Here\'s your protected data!' }, 'API key in the query string')
  const badKey = await call('/data?api_key=nope')
  t.equal(badKey.status, 401)
  t.equal(badKey.challenge, 'ApiKey realm="combined", header="X-API-Key"')
  t.equal((await call(`/data?api_key=${BOB_KEY}`, { 'x-api-key': ALICE_KEY })).status, 400, 'a key in both places is ambiguous: 400')

  // one route, three methods
  const token = (await (await fetch(`${base}/tokens`, { method: 'POST', headers: { authorization: basic('bob', 'builder') } })).json() as { token: string }).token
  t.same((await call('/me', { authorization: basic('alice', 'wonderland') })).body, { user: 'Alice', via: 'basic', roles: ['admin'] })
  t.same((await call('/me', { authorization: `Bearer ${token}` })).body, { user: 'Bob', via: 'token', roles: ['user'] })
  t.same((await call('/me', { 'x-api-key': BOB_KEY })).body, { user: 'Bob', via: 'apiKey', roles: ['user'] })
  t.same((await call('/me', { authorization: basic('alice', 'wrong'), 'x-api-key': ALICE_KEY })).body.via, 'apiKey',
    'any-of: a wrong password next to a valid key is admitted by the key')
  const none = await call('/me')
  t.equal(none.status, 401)
  t.same(none.body, { error: 'unauthorized', message: 'Authentication required' })
  t.match(none.challenge, /Basic realm="combined".*Bearer realm="combined".*ApiKey realm="combined"/)

  // roles
  t.same((await call('/admin', { authorization: basic('alice', 'wonderland') })).body, { admin: 'Alice' })
  const notAdmin = await call('/admin', { authorization: `Bearer ${token}` })
  t.equal(notAdmin.status, 403, 'a known user without the role: 403')
  t.match(notAdmin.challenge, /error="insufficient_scope"/)
  t.equal((await call('/admin', { 'x-api-key': ALICE_KEY })).status, 401, 'an API key is not one of this route\'s methods')

  // mode 'all'
  t.same((await call('/transfer', { authorization: basic('alice', 'wonderland'), 'x-api-key': ALICE_KEY }, 'POST')).body, { ok: true, by: 'Alice' })
  t.equal((await call('/transfer', { 'x-api-key': ALICE_KEY }, 'POST')).status, 401, 'mode all: the key alone is not enough')
  t.equal((await call('/transfer', { authorization: basic('alice', 'wonderland') }, 'POST')).status, 401, 'nor the password alone')
  t.equal((await call('/transfer', { authorization: basic('bob', 'builder'), 'x-api-key': ALICE_KEY }, 'POST')).status, 401,
    'mode all: both methods must find the same user')
})
