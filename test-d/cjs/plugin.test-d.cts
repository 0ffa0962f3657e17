// Type tests of dist/index.d.cts as a CommonJS application sees it, with `request.user` typed by
// the opt-in `fastify-multiauth/request-user` (dist/request-user.d.cts), required like the rest.
import Fastify = require('fastify')
import multiauth = require('fastify-multiauth')
import multiauthDefault from 'fastify-multiauth'
import { CredentialsInvalidError, fastifyMultiauth, MemoryStore } from 'fastify-multiauth'
import type { ApiKeyRecord, AuthInfo, GuardOptions, MethodName, MultiauthOptions, MultiauthUser } from 'fastify-multiauth'
import 'fastify-multiauth/request-user'
import { Cluster } from 'ioredis'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

declare module 'fastify-multiauth' {
  interface MultiauthUser { id: string }
}

const app = Fastify()
// The module itself is the plugin, as with Fastify's own plugins (before 0.2 this was TS2769:
// no overload of register matched the module object).
app.register(multiauth, { basic: { verify: (username) => ({ id: username }) } })
// .default, .fastifyMultiauth and the named exports are still there.
app.register(multiauth.default, { basic: { verify: (username) => ({ id: username }) } })
app.register(multiauth.fastifyMultiauth, { apiKey: { verify: (key) => (key ? { id: key } : null) } })
app.register(multiauthDefault, { apiKey: { verify: (key) => (key ? { id: key } : null) } })
app.register(fastifyMultiauth, { apiKey: { verify: (key) => (key ? { id: key } : null) } })
const records = new Map<string, ApiKeyRecord>([['id1', { user: { id: 'svc' }, hash: 'ab'.repeat(32) }]])
app.register(multiauth, {
  apiKey: { findKey: (id) => records.get(id) },
  token: { secret: 'x'.repeat(32), findUser: (claims) => ({ id: claims.sub }), expiresIn: '15m' },
  callbackTimeout: 10_000,
  rateLimit: { perCredential: { max: 100, timeWindow: '1 minute' } }
})
const sameStore: MemoryStore = new multiauth.MemoryStore()
const error: InstanceType<typeof CredentialsInvalidError> = new multiauth.CredentialsInvalidError()
const options: MultiauthOptions = { store: sameStore }
app.register(multiauth, options)
const hash: Promise<string> = multiauth.hashPassword('x')
// RedisStore from the namespace: a Cluster of yours, seed nodes, Sentinel options, waitForReplicas.
const clusterStore: multiauth.RedisStore = new multiauth.RedisStore({ client: new Cluster([{ host: '127.0.0.1', port: 7000 }]) })
const redisOptions: multiauth.RedisStoreOptions = { cluster: { nodes: [{ host: '127.0.0.1', port: 7000 }] } }
app.register(multiauth, { store: new multiauth.RedisStore(redisOptions), token: { secret: 'x'.repeat(32), findUser: (claims) => ({ id: claims.sub }), revocation: true } })
app.register(multiauth, {
  store: new multiauth.RedisStore({ connection: { sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'primary' }, waitForReplicas: { replicas: 1, timeout: '500ms' } }),
  session: { secret: 's'.repeat(32), findUser: (id) => ({ id }) }
})
app.register(multiauth, { store: clusterStore })
// @ts-expect-error waitForReplicas.replicas is a number, not a string
void new multiauth.RedisStore({ connection: 'redis://127.0.0.1:6379', waitForReplicas: { replicas: '1' } })
app.get('/', { onRequest: app.authGuard(['basic', 'apiKey']) }, async (request) => {
  const isUserOrNull: Equal<typeof request.user, MultiauthUser | null> = true
  const fromUser: string | undefined = request.user?.id
  const id: string | undefined = request.auth?.user.id
  const auth: AuthInfo | null = request.auth
  const { accessToken } = await app.authTokens.issue({ id: 'alice' }, { request })
  return { isUserOrNull, fromUser, id, via: auth?.method, hash, error, accessToken }
})

// The types shared with fastify-multiauth/request-user (a chunk of their own in dist/) are exported too.
const methods: MethodName[] = ['basic', 'apiKey']
const guard: GuardOptions = { methods, optional: true }
app.get('/optional', { onRequest: app.authGuard(guard) }, async (request) => request.auth?.user ?? null)

// @ts-expect-error unknown method name
app.authGuard(['basic', 'cookie'])
// @ts-expect-error verify must return the user type
app.register(multiauth, { basic: { verify: () => ({ name: 'x' }) } })
// @ts-expect-error verify must return the user type (through .default too)
app.register(multiauth.default, { basic: { verify: () => ({ name: 'x' }) } })
// @ts-expect-error not an option
app.register(multiauth, { basics: {} })
// @ts-expect-error `timeout` is now `callbackTimeout`
app.register(multiauth, { timeout: 5000 })
// @ts-expect-error apiKey.lookup is now apiKey.findKey
app.register(multiauth, { apiKey: { lookup: (id: string) => records.get(id) } })
// @ts-expect-error rateLimit.max is now rateLimit.perCredential.max
app.register(multiauth, { rateLimit: { max: 5, timeWindow: '1 minute' } })
// @ts-expect-error UnauthorizedError is split into CredentialsMissingError and CredentialsInvalidError
void multiauth.UnauthorizedError
