import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import multiauth from '../src/index.js'
import type { MultiauthOptions } from '../src/index.js'

// The token method's routes use authGuard; they may load while a later method's setup (or the
// rate limits) awaits a registration, so the guard must exist before any setup runs.

const SECRET = 'x'.repeat(32)
const basic = 'Basic ' + Buffer.from('a:b').toString('base64')

async function mint (t: Test, options: MultiauthOptions): Promise<number> {
  const app = Fastify()
  await app.register(multiauth, options)
  await app.ready()
  t.teardown(() => app.close())
  return (await app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basic } })).statusCode
}

const base = (): MultiauthOptions => ({
  basic: { verify: (u, p) => u === 'a' && p === 'b' ? { id: 'a' } : null },
  token: { secret: SECRET, findUser: (c) => ({ id: c.sub }), routes: true }
})

t.test('token routes with sessions', async (t) => {
  t.equal(await mint(t, { ...base(), session: { secret: SECRET, secure: false, findUser: (id) => ({ id }) } }), 200)
})

t.test('token routes with rate limits', async (t) => {
  t.equal(await mint(t, { ...base(), rateLimit: { perCredential: { max: 5 } } }), 200)
})

t.test('token routes for session logins only', async (t) => {
  const app = Fastify()
  await app.register(multiauth, {
    ...base(),
    token: { secret: SECRET, findUser: (c) => ({ id: c.sub }), routes: { methods: ['session'] } },
    session: { secret: SECRET, secure: false, findUser: (id) => ({ id }) }
  })
  await app.ready()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basic } })
  t.equal(res.statusCode, 401, 'Basic is not a login method of this route')
})
