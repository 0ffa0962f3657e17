// Brute force (OWASP ASVS 4.0.3 V2.2.1, RFC 6585 §4 / RFC 9110 §10.2.3 Retry-After):
// the failure budgets per username and per IP hold under CONCURRENT guessing, and the
// Retry-After they send is exact: refused one millisecond before it, admitted at it.
// Sequential lockout is in test/rate-limit.test.ts.
import t from 'tap'
import { mock } from 'node:test'
import { basicHeader, buildApp } from '../helpers/app.js'

async function guessApp (rateLimit: Parameters<typeof buildApp>[0]['rateLimit']) {
  const checks = { n: 0 }
  const app = await buildApp({
    basic: { verify: async (u, p) => { checks.n++; await new Promise((resolve) => setImmediate(resolve)); return p === 'right' ? { id: u } : null } },
    rateLimit
  })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  return { app, checks }
}

const attempt = (user: string, password: string, ip: string) =>
  ({ url: '/me', remoteAddress: ip, headers: { authorization: basicHeader(user, password) } })

t.test('[ASVS 4.0.3 V2.2.1] 50 concurrent wrong passwords for one username with a budget of 5: at most 5 are checked', async (t) => {
  const { app, checks } = await guessApp({ failuresPerUser: { max: 5, timeWindow: 900_000 }, failuresPerIp: false })
  t.teardown(() => app.close())
  const started = Date.now()
  const responses = await Promise.all(Array.from({ length: 50 }, async (_, i) => await app.inject(attempt('alice', `guess${i}`, `198.51.100.${i}`))))
  // Rounded up to whole seconds from when the window started: 900 unless the machine took over a second.
  const lowest = Math.ceil((900_000 - (Date.now() - started)) / 1000)
  const statuses = responses.map((r) => r.statusCode)
  t.equal(statuses.filter((s) => s === 401).length, 5, 'exactly the budget of guesses is answered 401')
  t.equal(statuses.filter((s) => s === 429).length, 45, 'every other guess is 429')
  t.equal(checks.n, 5, 'the password was checked only 5 times')
  t.ok(responses.filter((r) => r.statusCode === 429).every((r) => Number(r.headers['retry-after']) >= lowest && Number(r.headers['retry-after']) <= 900), `each 429 says Retry-After: the window's end (${lowest}-900 s)`)
})

t.test('[ASVS 4.0.3 V2.2.1] 50 concurrent failures from one IP with a budget of 5: at most 5 are checked', async (t) => {
  const { app, checks } = await guessApp({ failuresPerIp: { max: 5, timeWindow: 60_000 }, failuresPerUser: false })
  t.teardown(() => app.close())
  const responses = await Promise.all(Array.from({ length: 50 }, async (_, i) => await app.inject(attempt(`user${i}`, 'x', '203.0.113.9'))))
  t.equal(checks.n, 5, 'the callback ran 5 times')
  t.equal(responses.filter((r) => r.statusCode === 401).length, 5)
  t.equal(responses.filter((r) => r.statusCode === 429).length, 45)
})

t.test('[ASVS 4.0.3 V2.2.1] concurrent correct logins are not limited by the failure budget', async (t) => {
  const { app } = await guessApp({ failuresPerUser: { max: 2 }, failuresPerIp: { max: 2 } })
  t.teardown(() => app.close())
  const responses = await Promise.all(Array.from({ length: 20 }, async () => await app.inject(attempt('alice', 'right', '203.0.113.10'))))
  t.same([...new Set(responses.map((r) => r.statusCode))], [200])
})

t.test('[RFC 9110 §10.2.3, RFC 6585 §4] Retry-After is honoured exactly (fake clock): still 429 just before it, admitted at it', async (t) => {
  mock.timers.enable({ apis: ['Date'], now: Date.UTC(2030, 0, 1) })
  t.teardown(() => mock.timers.reset())
  const { app } = await guessApp({ failuresPerUser: { max: 2, timeWindow: 30_000 }, failuresPerIp: { max: 3, timeWindow: 20_000 } })
  t.teardown(() => app.close())
  for (let i = 0; i < 2; i++) t.equal((await app.inject(attempt('alice', 'nope', '192.0.2.1'))).statusCode, 401)
  const user = await app.inject(attempt('alice', 'right', '192.0.2.2'))
  t.equal(user.statusCode, 429, 'username locked, even with the right password')
  const userWait = Number(user.headers['retry-after'])
  t.equal(userWait, 30)
  t.equal((await app.inject(attempt('bob', 'nope', '192.0.2.1'))).statusCode, 401, 'third failure from this IP')
  const ip = await app.inject(attempt('carol', 'right', '192.0.2.1'))
  t.equal(ip.statusCode, 429, 'IP locked')
  t.equal(Number(ip.headers['retry-after']), 20)
  mock.timers.tick(20_000 - 1)
  t.equal((await app.inject(attempt('carol', 'right', '192.0.2.1'))).statusCode, 429, 'IP: 1 ms before Retry-After → still 429')
  mock.timers.tick(1)
  t.equal((await app.inject(attempt('carol', 'right', '192.0.2.1'))).statusCode, 200, 'IP: at Retry-After → admitted')
  mock.timers.tick(10_000 - 1)
  t.equal((await app.inject(attempt('alice', 'right', '192.0.2.3'))).statusCode, 429, 'user: 1 ms before Retry-After → still 429')
  mock.timers.tick(1)
  t.equal((await app.inject(attempt('alice', 'right', '192.0.2.3'))).statusCode, 200, 'user: at Retry-After → admitted')
})

t.test('[ASVS 4.0.3 V2.2.1] POST /tokens (a Basic login that mints tokens) is under the same failure budget; token routes and rateLimit register together', async (t) => {
  let checks = 0
  const app = await buildApp({
    basic: { verify: async (u, p) => { checks++; return p === 'right' ? { id: u } : null } },
    token: { secret: 'brute-force-secret-of-32-bytes-or-more', routes: true, findUser: (claims) => ({ id: claims.sub }) },
    rateLimit: { failuresPerUser: { max: 3, timeWindow: 60_000 }, failuresPerIp: false }
  })
  await app.ready()
  t.teardown(() => app.close())
  const mint = (password: string) => app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader('alice', password) } })
  t.equal((await mint('right')).statusCode, 200, 'control: a correct login gets a token')
  const guesses = await Promise.all(Array.from({ length: 20 }, async (_, i) => (await mint(`guess${i}`)).statusCode))
  t.equal(guesses.filter((s) => s === 401).length, 3)
  t.equal(guesses.filter((s) => s === 429).length, 17)
  t.equal(checks, 4, 'one correct login and 3 guesses were checked')
  t.equal((await mint('right')).statusCode, 429, 'the username is locked on the token route too')
})

t.test('[design] token routes register with session and rateLimit together (setup order), and the token route is guarded with the limits', async (t) => {
  const app = await buildApp({
    basic: { verify: async (u, p) => p === 'right' ? { id: u } : null },
    token: { secret: 'brute-force-secret-of-32-bytes-or-more', routes: true, findUser: (claims) => ({ id: claims.sub }) },
    session: { secret: 'a-session-secret-of-at-least-32-characters', secure: false, findUser: (id) => ({ id }) },
    rateLimit: { failuresPerUser: { max: 1, timeWindow: 60_000 }, failuresPerIp: false }
  })
  await app.ready()
  t.teardown(() => app.close())
  const mint = (password: string) => app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader('bob', password) } })
  t.equal((await mint('wrong')).statusCode, 401)
  t.equal((await mint('right')).statusCode, 429)
})
