// Type tests of dist/index.d.ts as an ES module application sees it.
import Fastify from 'fastify'
import type { FastifyRequest } from 'fastify'
import multiauth, {
  fastifyMultiauth, hashPassword, MemoryStore, UnauthorizedError, generateApiKey
} from 'fastify-multiauth'
import type { AuthInfo, MethodName, MultiauthOptions } from 'fastify-multiauth'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

declare module 'fastify-multiauth' {
  interface MultiauthUser { id: string, roles: string[] }
}

const app = Fastify()
const alice = { id: 'alice', roles: ['admin'] }

// ---- positive cases ----
await app.register(multiauth, {
  realm: 'example',
  basic: { verify: async (username, password, request) => (username === 'alice' && password === 'x' && request.ip ? alice : null) },
  token: { secret: 'x'.repeat(32), lookup: async (claims) => (claims.sub === 'alice' ? alice : null) },
  apiKey: { verify: (key) => (key === 'k' ? alice : undefined), header: 'x-api-key', query: 'api_key' },
  roles: (user) => user.roles
})
await app.register(fastifyMultiauth, { basic: { findUser: async () => ({ user: alice, passwordHash: await hashPassword('x') }) } })
// Synchronous and thenable answers are accepted.
const thenable: PromiseLike<typeof alice> = { then: (ok) => Promise.resolve(alice).then(ok) }
await app.register(multiauth, { basic: { verify: () => thenable } })
await app.register(multiauth, { store: new MemoryStore() })

app.get('/me', { onRequest: app.authGuard(['basic', 'token', 'apiKey']) }, async (request) => {
  const user = request.user
  const isUserOrNull: Equal<typeof user, { id: string, roles: string[] } | null> = true
  const auth = request.auth
  if (auth === null) return null
  const isMethod: Equal<typeof auth.method, MethodName> = true
  // The union narrows on `method`.
  switch (auth.method) {
    case 'token': { const c: Record<string, unknown> = auth.claims; return c }
    case 'oauth2': { const p: string = auth.provider; return p }
    case 'apiKey': { const k: string | undefined = auth.keyId; return k }
    case 'session': { const p: string | undefined = auth.provider; return p }
    case 'basic': {
      // @ts-expect-error Basic has no claims
      auth.claims
      return auth.user.id
    }
  }
  return [isUserOrNull, isMethod]
})
app.get('/admin', { onRequest: app.authGuard({ methods: ['token'], roles: ['admin', ['ops', 'oncall']], scopes: ['read'], mode: 'all', optional: true }) }, async () => 'ok')
app.addHook('onRequest', app.verifyBasic)
const info: AuthInfo | null = null
const e = new UnauthorizedError()
const statusCode: number = e.statusCode
const key: string = generateApiKey({ prefix: 'sk', environment: 'live' }).key
const opts: MultiauthOptions = { basic: { verify: () => null } }
void info; void statusCode; void key; void opts

// ---- negative cases: each line must fail to compile ----
// @ts-expect-error unknown method name in the guard
app.authGuard(['password'])
// @ts-expect-error unknown method name in the guard's object form
app.authGuard({ methods: ['basic', 'jwt'] })
// @ts-expect-error mode is 'any' or 'all'
app.authGuard({ methods: ['basic'], mode: 'some' })
// @ts-expect-error roles are strings or lists of strings
app.authGuard({ methods: ['basic'], roles: [1] })
// @ts-expect-error the plugin needs options of the right shape: unknown key
await app.register(multiauth, { bsic: { verify: () => alice } })
// @ts-expect-error basic.verify takes (username, password, request): a fourth parameter is wrong
await app.register(multiauth, { basic: { verify: (u: string, p: string, r: FastifyRequest, extra: string) => alice } })
// @ts-expect-error basic.verify must return the user (or falsy), not `true`
await app.register(multiauth, { basic: { verify: async () => true } })
// @ts-expect-error basic.verify's username is a string
await app.register(multiauth, { basic: { verify: (username: number) => alice } })
// @ts-expect-error a user object missing fields of MultiauthUser
await app.register(multiauth, { apiKey: { verify: () => ({ id: 'x' }) } })
// @ts-expect-error token.lookup is required with token
await app.register(multiauth, { token: { secret: 'x'.repeat(32) } })
// @ts-expect-error roles must return role names
await app.register(multiauth, { roles: () => 42 })
// @ts-expect-error findUser returns { user, passwordHash }
await app.register(multiauth, { basic: { findUser: async () => ({ user: alice, hash: 'x' }) } })
// @ts-expect-error session.lookup receives the stored user id, a string
await app.register(multiauth, { session: { secret: 's'.repeat(32), lookup: (id: number) => alice } })
// @ts-expect-error oauth2.onLogin must return a user
await app.register(multiauth, { oauth2: { baseUrl: 'https://a', providers: {}, onLogin: () => 'alice' } })
app.get('/x', async (request) => {
  // @ts-expect-error request.user may be null before narrowing
  return request.user.id
})
