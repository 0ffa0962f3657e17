// [Issue 12, finding 3; design: "Values read from application records and token claims are
// type-checked"] Records come from SQL and JSON: `1`/`0` for booleans, strings for arrays.
// A field of the wrong type is a 500 or is read in the safe direction, never a pass and never a
// substring match. Before the fix, `revoked: 1` was admitted and `scopes: "orders:read
// orders:write-own"` satisfied a required `orders:write` through String.prototype.includes; a
// roles callback answering a number crashed with a raw TypeError; these tests failed then.
import t from 'tap'
import Fastify from 'fastify'
import multiauth, { generateApiKey } from '../../src/index.js'
import type { ApiKeyRecord, UserRoles } from '../../src/index.js'
import type { AuthMethod } from '../../src/core/types.js'
import { handMadeJwt, SECRET } from '../helpers/tokens.js'

const issued = generateApiKey({ prefix: 'shop', environment: 'live' })

async function keyApp (record: Record<string, unknown>) {
  const app = Fastify()
  await app.register(multiauth, {
    apiKey: { findKey: (id) => id === issued.id ? { user: { id: 'client' }, hash: issued.hash, ...record } as ApiKeyRecord<{ id: string }> : null }
  })
  app.get('/orders', { onRequest: app.authGuard(['apiKey']) }, async () => 'read')
  app.post('/orders', { onRequest: app.authGuard({ methods: ['apiKey'], scopes: ['orders:write'] }) }, async () => 'written')
  t.teardown(() => app.close())
  return app
}

t.test('revoked: any truthy value revokes (SQL 1, "t", "true", "false" as text); false, 0 and null do not', async (t) => {
  for (const revoked of [true, 1, 't', 'true', 'false', 'yes', {}]) {
    const app = await keyApp({ revoked })
    t.equal((await app.inject({ url: '/orders', headers: { 'x-api-key': issued.key } })).statusCode, 401, `revoked: ${JSON.stringify(revoked)}`)
  }
  for (const revoked of [false, 0, null, undefined]) {
    const app = await keyApp({ revoked })
    t.equal((await app.inject({ url: '/orders', headers: { 'x-api-key': issued.key } })).statusCode, 200, `revoked: ${JSON.stringify(revoked)}`)
  }
})

t.test('scopes: only an array of strings, compared whole; a string or mixed array is a server error, never a substring match', async (t) => {
  const granted = await keyApp({ scopes: ['orders:read', 'orders:write'] })
  t.equal((await granted.inject({ method: 'POST', url: '/orders', headers: { 'x-api-key': issued.key } })).statusCode, 200)
  const near = await keyApp({ scopes: ['orders:read', 'orders:write-own'] })
  t.equal((await near.inject({ method: 'POST', url: '/orders', headers: { 'x-api-key': issued.key } })).statusCode, 403, 'orders:write-own is not orders:write')
  for (const scopes of ['orders:read orders:write-own', 'orders:write', ['orders:write', 7], { 0: 'orders:write', length: 1 }]) {
    const app = await keyApp({ scopes })
    const res = await app.inject({ method: 'POST', url: '/orders', headers: { 'x-api-key': issued.key } })
    t.equal(res.statusCode, 500, `scopes: ${JSON.stringify(scopes)} → 500`)
    t.equal(res.json().code, 'FST_MULTIAUTH_CALLBACK_ERROR', 'a generic error, the reason in the log')
  }
})

t.test('roles: a string is one role, an array or Set of strings is compared whole; anything else is a 500', async (t) => {
  const make = async (roles: unknown) => {
    const app = Fastify()
    await app.register(multiauth, { apiKey: { verify: () => ({ id: 'u' }) }, roles: () => roles as UserRoles })
    app.get('/edit', { onRequest: app.authGuard({ methods: ['apiKey'], roles: ['editor'] }) }, async () => 'ok')
    t.teardown(() => app.close())
    return (await app.inject({ url: '/edit', headers: { 'x-api-key': 'k' } })).statusCode
  }
  t.equal(await make('editor'), 200)
  t.equal(await make(['editor']), 200)
  t.equal(await make(new Set(['editor'])), 200)
  t.equal(await make('admin,editor'), 403, 'a comma-separated string is one role, not two')
  t.equal(await make('editors'), 403)
  t.equal(await make(null), 403)
  for (const roles of [1, { editor: true }, ['editor', 2], [['editor']]]) {
    t.equal(await make(roles), 500, `roles: ${JSON.stringify(roles)} → 500`)
  }
})

t.test('a custom AuthMethod\'s scopes go through the same check (defence in depth in the guard)', async (t) => {
  // The guard re-checks what any method hands it; a string reported as scopes never matches loosely.
  const { createGuard } = await import('../../src/core/guard.js')
  const method: AuthMethod = {
    name: 'apiKey',
    extract: () => 'x',
    verify: () => ({ user: { id: 'u' }, method: 'apiKey', scopes: 'orders:write-own' as unknown as string[] })
  }
  const guard = createGuard({ methods: new Map([['apiKey', method]]), timeoutMs: 0 }, { methods: ['apiKey'], scopes: ['orders:write'] })
  const app = Fastify()
  app.decorateRequest('user', null as never) // as the plugin does: request.user's type is whoever declares it
  app.decorateRequest('auth', null)
  app.get('/x', { onRequest: guard }, async () => 'ok')
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/x' })).statusCode, 500)
})

t.test('token scope: claims(user) must give a string or an array of scope strings; a verified claim of another shape grants nothing', async (t) => {
  const app = Fastify()
  let scope: unknown = 'read'
  await app.register(multiauth, {
    token: { secret: SECRET, findUser: (claims) => ({ id: claims.sub }), claims: (user) => ({ sub: (user as { id: string }).id, scope }) as never }
  })
  app.get('/write', { onRequest: app.authGuard({ methods: ['token'], scopes: ['write'] }) }, async () => 'ok')
  t.teardown(() => app.close())
  await app.ready()
  for (const [value, status] of [['read write', 200], [['write'], 200], ['rewrite', 403], [['rewrite'], 403]] as const) {
    scope = value
    const { accessToken: token } = await app.authTokens.issue({ id: 'u' })
    t.equal((await app.inject({ url: '/write', headers: { authorization: `Bearer ${token}` } })).statusCode, status, `scope ${JSON.stringify(value)}`)
  }
  for (const value of [7, { write: true }, ['write', 3], ['read write']]) {
    scope = value
    await t.rejects(app.authTokens.issue({ id: 'u' }), { code: 'FST_MULTIAUTH_CALLBACK_ERROR' }, `claims scope ${JSON.stringify(value)} is refused at issue`)
  }
  // A token signed with our key but with a scope claim of another shape (another issuer's habit).
  const now = Math.floor(Date.now() / 1000)
  for (const claim of [7, { write: true }, ['write', 3], ['writes']]) {
    const signed = handMadeJwt({ alg: 'HS256', typ: 'at+jwt' }, { sub: 'u', jti: `j-${JSON.stringify(claim)}`, iat: now, exp: now + 60, scope: claim }, SECRET)
    const status = (await app.inject({ url: '/write', headers: { authorization: `Bearer ${signed}` } })).statusCode
    t.equal(status, 403, `verified scope claim ${JSON.stringify(claim)} grants nothing`)
  }
})

t.test('a session record of another shape is no login (the provider field included)', async (t) => {
  const app = Fastify()
  await app.register(multiauth, { session: { secret: 'a-session-secret-of-at-least-32-characters', secure: false, findUser: (id) => ({ id }) } })
  let provider: unknown
  app.post('/login', async (request) => {
    await app.authSessions.login(request, { id: 'ann' })
    if (provider !== undefined) request.session.set('multiauth' as never, { u: 'ann', t: Date.now(), p: provider } as never)
    return 'ok'
  })
  app.get('/me', { onRequest: app.authGuard(['session']) }, async (request) => request.auth?.method)
  t.teardown(() => app.close())
  for (const [value, status] of [[undefined, 200], [1, 401], [{ name: 'x' }, 401]] as const) {
    provider = value
    const res = await app.inject({ method: 'POST', url: '/login' })
    const cookie = `sid=${res.cookies.find((c) => c.name === 'sid')?.value ?? ''}`
    t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, status, `p: ${JSON.stringify(value)}`)
  }
})
