import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runFlow, startExample, statuses } from './helpers/example-process.js'

t.test('examples/tokens over real HTTP', async (t) => {
  const { base, flow } = await startExample(t, 'tokens', { JWT_SECRET: '' }) // empty: the example makes a random one

  // The printed flow, pasted into a shell as it is, with the real curl: login, call, refresh,
  // reuse refused, revoke, refused after revoke, and a token from Basic on POST /api/v1/tokens/.
  const dir = mkdtempSync(join(tmpdir(), 'example-tokens-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = await runFlow(flow, dir)
  const [call, refresh, reuse, revoke, afterRevoke, basicMint] = statuses(out)
  t.match(out, /^\{"access_token":"eyJ[^"]+","refresh_token":"[^"]+"\}$/m, '1. login printed both tokens')
  t.equal(call, 200, '2. the call with the access token')
  t.match(out, '{"logged_in_as":"alice@example.com","via":"token"} HTTP 200')
  t.equal(refresh, 200, '3. refresh')
  t.equal(reuse, 400, '4. the spent refresh token is refused')
  const reuseLine = out.split('\n').find((l) => l.endsWith(' HTTP 400')) ?? ''
  t.match(reuseLine, /^\{"error":"invalid_grant","error_description":"[^"]+"\} HTTP 400$/, 'with the RFC 6749 error body')
  t.notMatch(reuseLine, /eyJ|access_token|refresh_token/, 'and gets no token')
  t.equal(revoke, 200, '5. revoke (RFC 7009)')
  t.equal(afterRevoke, 401, '   the revoked access token is refused')
  t.equal(basicMint, 200, 'Basic on POST /api/v1/tokens/')
  t.match(out, /\{"token":"eyJ[^"]+","expiration":3600,/)

  const basic = 'Basic ' + Buffer.from('alice@example.com:wonderland').toString('base64')
  // POST /api/v1/tokens/ with Basic
  const minted = await fetch(`${base}/api/v1/tokens/`, { method: 'POST', headers: { authorization: basic } })
  t.equal(minted.status, 200)
  const { token, expiration, refresh_token: refreshToken } = await minted.json() as { token: string, expiration: number, refresh_token: string }
  t.equal(expiration, 3600)
  t.type(refreshToken, 'string')

  const refused = await fetch(`${base}/api/v1/tokens/`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
  t.equal(refused.status, 401, 'a token cannot mint a token')
  t.same(await refused.json(), { error: 'unauthorized', message: 'Authentication required' }, 'the example\'s JSON error shape')

  const viaBasicToken = await fetch(`${base}/protected`, { headers: { authorization: 'Basic ' + Buffer.from(`${token}:`).toString('base64') } })
  t.same(await viaBasicToken.json(), { logged_in_as: 'alice@example.com', via: 'token' }, 'the token as the Basic user-id')

  const wrong = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice@example.com', password: 'nope' }) })
  t.equal(wrong.status, 401)
  const anonymous = await fetch(`${base}/protected`)
  t.equal(anonymous.status, 401)
  t.match(anonymous.headers.get('www-authenticate') ?? '', /Bearer realm="example"/)
})
