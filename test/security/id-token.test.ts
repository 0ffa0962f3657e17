// id_token claim checks (OpenID Connect Core §3.1.3.7) against the REAL in-process oidc-provider.
// The provider's token response is re-issued with chosen claims and signed with the provider's
// own key (test/helpers/oidc-provider.ts `editIdToken`), so only the claim under test differs
// from a genuine id_token: the signature, issuer, audience and nonce all verify.
import { Writable } from 'node:stream'
import t from 'tap'
import Fastify from 'fastify'
import type { JWTPayload } from 'jose'
import multiauth from '../../src/index.js'
import { CookieJar, runCodeFlow, startOidcProvider } from '../helpers/oidc-provider.js'
import { freePort } from '../helpers/redis.js'

const SECRET = 'a-session-secret-of-at-least-32-characters'
const DAY = 86_400

const port = await freePort()
const base = `http://localhost:${port}`
const provider = await startOidcProvider({ redirectUris: [`${base}/auth/local/callback`] })
t.teardown(provider.close)

const reasons: string[] = []
const logins: string[] = []
const app = Fastify({
  logger: {
    level: 'info',
    stream: new Writable({
      write (chunk: Buffer, _encoding, done) {
        const line = JSON.parse(chunk.toString()) as { reason?: string }
        if (typeof line.reason === 'string') reasons.push(line.reason)
        done()
      }
    })
  }
})
await app.register(multiauth, {
  session: { secret: SECRET, secure: false, findUser: (id) => ({ id }) },
  oauth2: {
    baseUrl: base,
    providers: { local: { issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret } },
    findUser (profile) {
      logins.push(profile.id)
      return { id: profile.id }
    }
  }
})
await app.listen({ port, host: 'localhost' })
t.teardown(() => app.close())

/** One login whose id_token carries the claims `edit` returns; the callback's status and the refusal reason, if any. */
async function loginWith (edit: (claims: JWTPayload) => JWTPayload): Promise<{ status: number, reason: string | undefined }> {
  reasons.length = 0
  provider.editIdToken(edit)
  try {
    const { callback } = await runCodeFlow(new CookieJar(), `${base}/auth/local`, provider.issuer)
    await callback.arrayBuffer()
    return { status: callback.status, reason: reasons[0] }
  } finally {
    provider.editIdToken(undefined)
  }
}

const now = (): number => Math.floor(Date.now() / 1000)

t.test('control: an id_token re-signed with its own claims logs in (the harness changes nothing else)', async (t) => {
  const { status, reason } = await loginWith((claims) => claims)
  t.equal(status, 302, reason ?? 'logged in')
  t.equal(logins.at(-1), 'alice')
})

// Failed before the fix: azp was compared only when `aud` held several audiences.
t.test('[OIDC Core §3.1.3.7] an azp naming another client is refused, also with a single audience', async (t) => {
  const { status, reason } = await loginWith((claims) => ({ ...claims, azp: 'another-client' }))
  t.equal(status, 401)
  t.equal(reason, 'id_token azp is not this client')
  const wrongType = await loginWith((claims) => ({ ...claims, azp: [provider.clientId] as unknown as string }))
  t.equal(wrongType.status, 401, 'an azp that is not the client id string (an array holding it) is refused too')
  t.equal((await loginWith((claims) => ({ ...claims, azp: provider.clientId }))).status, 302, 'azp equal to our client id passes')
})

t.test('[OIDC Core §3.1.3.7] several audiences: azp must be present and be this client', async (t) => {
  const missing = await loginWith((claims) => ({ ...claims, aud: [provider.clientId, 'another-client'] }))
  t.equal(missing.status, 401)
  t.equal(missing.reason, 'id_token azp is not this client')
  t.equal((await loginWith((claims) => ({ ...claims, aud: [provider.clientId, 'another-client'], azp: provider.clientId }))).status, 302)
})

// Failed before the fix: only `exp` bounded the token; an `iat` a year old or a day ahead passed.
t.test('[OIDC Core §3.1.3.7 item 10] an iat a year old is refused although exp is still ahead', async (t) => {
  const { status, reason } = await loginWith((claims) => ({ ...claims, iat: now() - 365 * DAY }))
  t.equal(status, 401)
  t.match(reason, /^id_token invalid: "iat" claim timestamp check failed \(too far in the past\)/)
})

t.test('[OIDC Core §3.1.3.7 item 10] an iat a day in the future is refused', async (t) => {
  const { status, reason } = await loginWith((claims) => ({ ...claims, iat: now() + DAY }))
  t.equal(status, 401)
  t.match(reason, /^id_token invalid: "iat" claim timestamp check failed \(it should be in the past\)/)
})

t.test('an iat within the limits passes: 9 minutes old (limit 10 + 30 s skew), 5 s ahead (skew 30 s)', async (t) => {
  // Margins of 90 s and 25 s against a check that runs milliseconds after the claims are written.
  t.equal((await loginWith((claims) => ({ ...claims, iat: now() - 540 }))).status, 302)
  t.equal((await loginWith((claims) => ({ ...claims, iat: now() + 5 }))).status, 302)
})

t.test('an iat that is not a number is refused', async (t) => {
  t.equal((await loginWith((claims) => ({ ...claims, iat: String(now()) as unknown as number }))).status, 401)
})

// Same class (claims read loosely): a numeric sub would become the account key "123" after String().
t.test('[OIDC Core §2] a sub that is not a non-empty string is refused', async (t) => {
  const numeric = await loginWith((claims) => ({ ...claims, sub: 123 as unknown as string }))
  t.equal(numeric.status, 401)
  t.ok(numeric.reason !== undefined, numeric.reason ?? 'no reason logged')
  t.equal((await loginWith((claims) => ({ ...claims, sub: '' }))).status, 401)
})
