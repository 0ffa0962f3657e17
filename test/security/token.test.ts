// Attack cases against JWT bearer tokens (RFC 6750, RFC 7519, RFC 8725) that the method's
// own tests (test/token-verify.test.ts, test/token-refresh.test.ts) do not already cover:
// kid injection, key-carrying headers (jku/x5u/jwk/x5c), missing registered claims,
// oversized and deeply nested tokens.
import t from 'tap'
import type { Test } from 'tap'
import { createServer } from 'node:http'
import { createSign, generateKeyPairSync } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { bearer, claimsFor, handMadeJwt, rsaPair, SECRET, tokenApp } from '../helpers/tokens.js'
import { rawRequest } from '../helpers/raw-http.js'

const INVALID = /^Bearer realm="api", error="invalid_token"/

async function expectRefused (t: Test, app: FastifyInstance, token: string, what: string): Promise<void> {
  const res = await app.inject({ url: '/me', headers: bearer(token) })
  t.equal(res.statusCode, 401, `${what} → 401`)
  t.match(String(res.headers['www-authenticate']), INVALID, `${what} → invalid_token`)
  t.equal(res.json().message, 'Invalid credentials', `${what}: the body says nothing about why`)
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** An RS256 JWT signed with `privateKey`, with any header the attacker likes. */
function rsaJwt (header: Record<string, unknown>, payload: Record<string, unknown>, privateKey: string): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  return `${input}.${createSign('RSA-SHA256').update(input).sign(privateKey, 'base64url')}`
}

t.test('[RFC 8725 §3.10, RFC 7515 §4.1.4] kid injection: path traversal, SQL-looking and prototype kids never select a key', async (t) => {
  const keys = [
    { kid: 'k1', secret: 'first-secret-0123456789-0123456789-a' },
    { kid: 'k2', secret: 'second-secret-0123456789-0123456789-b' }
  ]
  const app = await tokenApp({ secret: undefined, keys })
  await app.ready()
  t.teardown(() => app.close())
  const claims = claimsFor('ann', { scope: 'write' })
  t.equal((await app.inject({ url: '/me', headers: bearer(handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid: 'k2' }, claims, keys[1]?.secret)) })).statusCode, 200, 'control: a known kid with its own key passes')
  const kids: unknown[] = [
    '../../../../../../dev/null', '/dev/null', '..\\..\\windows\\win.ini', "' OR '1'='1", "k1' --", 'k1\u0000', ' k1', 'K1',
    '__proto__', 'constructor', 'toString', 'hasOwnProperty', 0, null, ['k1'], { kid: 'k1' }, ''
  ]
  for (const kid of kids) {
    // Signed with what a lookup by a file path or a broken query would yield: an empty key, or the first configured key.
    for (const secret of ['', keys[0]?.secret as string]) {
      await expectRefused(t, app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt', kid }, claims, secret), `kid ${JSON.stringify(kid)} signed with ${secret === '' ? 'an empty key' : 'key k1'}`)
    }
  }
})

t.test('[RFC 8725 §3.10, RFC 7515 §4.1.2-4.1.6] jku, x5u, jwk and x5c headers are ignored: never fetched, never trusted', async (t) => {
  const pair = rsaPair()
  const app = await tokenApp({ secret: undefined, ...pair })
  await app.ready()
  t.teardown(() => app.close())
  // A key server the attacker controls (on loopback): it must never be asked.
  let fetched = 0
  const attacker = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
  const attackerJwk = { ...(await import('node:crypto')).createPublicKey(attacker.publicKey).export({ format: 'jwk' }), kid: 'evil', alg: 'RS256', use: 'sig' }
  const keyServer = createServer((_req, res) => { fetched++; res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [attackerJwk] })) })
  await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => keyServer.close())
  const keyUrl = `http://127.0.0.1:${(keyServer.address() as { port: number }).port}/jwks.json`

  const claims = claimsFor('ann', { scope: 'write' })
  t.equal((await app.inject({ url: '/me', headers: bearer(rsaJwt({ alg: 'RS256', typ: 'at+jwt' }, claims, pair.privateKey)) })).statusCode, 200, 'control: signed by the configured key')
  const headers: Array<[string, Record<string, unknown>]> = [
    ['jku', { jku: keyUrl, kid: 'evil' }],
    ['x5u', { x5u: keyUrl }],
    ['jwk', { jwk: attackerJwk }],
    ['x5c', { x5c: [Buffer.from(attacker.publicKey.replace(/-----[^-]+-----|\s/g, ''), 'base64').toString('base64')] }]
  ]
  for (const [name, extra] of headers) {
    await expectRefused(t, app, rsaJwt({ alg: 'RS256', typ: 'at+jwt', ...extra }, claims, attacker.privateKey), `${name} pointing at the attacker's key`)
  }
  // A key header on a token signed by the configured key changes nothing either way.
  t.equal((await app.inject({ url: '/me', headers: bearer(rsaJwt({ alg: 'RS256', typ: 'at+jwt', jku: keyUrl }, claims, pair.privateKey)) })).statusCode, 200, 'jku is ignored, not an error')
  t.equal(fetched, 0, 'the key URL was never fetched')
})

t.test('[RFC 7519 §4.1, RFC 8725 §3.10] tokens missing exp, iat, jti or sub are refused even with a valid signature', async (t) => {
  const app = await tokenApp()
  await app.ready()
  t.teardown(() => app.close())
  const good = claimsFor('ann', { scope: 'write' })
  t.equal((await app.inject({ url: '/me', headers: bearer(handMadeJwt({ alg: 'HS256', typ: 'at+jwt' }, good, SECRET)) })).statusCode, 200, 'control')
  for (const claim of ['exp', 'iat', 'jti', 'sub']) {
    const { [claim]: _dropped, ...rest } = good
    await expectRefused(t, app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt' }, rest, SECRET), `no ${claim}`)
  }
  for (const [claim, value] of [['exp', String(Number(good.exp))], ['exp', null], ['sub', 42], ['jti', ['a']]] as const) {
    await expectRefused(t, app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt' }, { ...good, [claim]: value }, SECRET), `${claim} of the wrong type (${JSON.stringify(value)})`)
  }
  await expectRefused(t, app, handMadeJwt({ alg: 'HS256', typ: 'at+jwt' }, { ...good, nbf: Math.floor(Date.now() / 1000) + 120 }, SECRET), 'nbf two minutes ahead (beyond the 30 s tolerance)')
})

t.test('[RFC 8725 §3.2 (DoS), design: header size limit] huge and deeply nested tokens: 400 over the limit, 401 under it, never 500', async (t) => {
  const app = await tokenApp()
  await app.ready()
  t.teardown(() => app.close())
  const good = claimsFor('ann', { scope: 'write' })
  const big = handMadeJwt({ alg: 'HS256', typ: 'at+jwt' }, { ...good, pad: 'x'.repeat(10_000) }, SECRET)
  const res = await app.inject({ url: '/me', headers: bearer(big) })
  t.equal(res.statusCode, 400, 'a validly signed 13 KB token is over maxLength → 400, not decoded')
  // A payload that is mostly nesting, under the limit: JSON.parse depth, not a crash.
  const nested = `${b64url({ alg: 'HS256', typ: 'at+jwt' })}.${Buffer.from('{"a":' + '['.repeat(2500) + ']'.repeat(2500) + '}').toString('base64url')}.sig`
  t.ok(nested.length < 8192)
  await expectRefused(t, app, nested, 'a 2,500-deep nested payload with a bad signature')
  const nestedSigned = handMadeJwt({ alg: 'HS256', typ: 'at+jwt' }, { ...good, a: JSON.parse('['.repeat(2000) + ']'.repeat(2000)) }, SECRET)
  t.equal((await app.inject({ url: '/me', headers: bearer(nestedSigned) })).statusCode, 200, 'a deep claim with a valid signature is just data')
  await expectRefused(t, app, `${'a'.repeat(4000)}.${'b'.repeat(3000)}.c`, 'segments that are not base64url JSON')
  await expectRefused(t, app, '.'.repeat(5000), 'only dots')

  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const huge = await rawRequest(port, `GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(100_000)}\r\nConnection: close\r\n\r\n`)
  t.equal(huge.status, 431, 'a 100 KB bearer token over real HTTP: Node refuses the headers (431) before Fastify')
})
