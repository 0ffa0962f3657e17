// One instance of the application. Every instance runs this same program; they share nothing
// but the Redis Cluster and the secrets, so a token or a session issued by one is accepted by
// every other, and a revocation or a logout on one holds on all of them.
//
// Configured by the environment (server.ts sets it):
//   REDIS_CLUSTER   seed nodes, `host:port,host:port,…`
//   JWT_SECRET      the same on every instance (at least 32 bytes)
//   SESSION_SECRET  the same on every instance (at least 32 characters)
//   INSTANCE        a name, shown in the answers; PORT (0: a free one)
import Fastify from 'fastify'
import multiauth, { hashPassword, RedisStore } from '../../src/index.js'
import type { BasicCredential, MultiauthUser } from '../../src/index.js'

// Your user type: what the callbacks return and `request.auth.user` is (declaration merging;
// in your application: `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser { id: string, name: string }
}

function required (name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') throw new Error(`${name} is not set (start the example with: npm run example -- cluster)`)
  return value
}

const instance = process.env.INSTANCE ?? 'app'
const nodes = required('REDIS_CLUSTER').split(',').map((address) => {
  const [host = '', port = ''] = address.split(':')
  return { host, port: Number(port) }
})

// Your database. Passwords are stored as argon2id hashes.
const accounts = new Map<string, BasicCredential>([
  ['alice', { user: { id: 'alice', name: 'Alice' }, passwordHash: await hashPassword('wonderland') }]
])
const byId = (id: string): MultiauthUser | null => accounts.get(id)?.user ?? null

// A Cluster client the store owns (and closes with the app). Every key the plugin reads
// together shares one hash slot, so each check is one command on one master.
const store = new RedisStore({ cluster: { nodes } })

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
await app.register(multiauth, {
  realm: 'cluster-example',
  store,
  basic: { findCredential: (username) => accounts.get(username) ?? null },
  token: {
    secret: required('JWT_SECRET'),
    claims: (user) => ({ sub: user.id }),
    findUser: (claims) => byId(claims.sub),
    expiresIn: '15m',
    revocation: true, // a revoked token is refused by every instance: the revocation is in Redis
    routes: { methods: ['basic'] } // POST /tokens (Basic), /tokens/refresh, /tokens/revoke
  },
  session: {
    secret: required('SESSION_SECRET'),
    // Local HTTP only: in production leave `secure` at its default (true) and serve HTTPS.
    secure: false,
    findUser: byId
  }
})

// A session login with the same Basic credentials (a real application would have a form).
app.post('/login', { onRequest: app.authGuard(['basic']) }, async (request) => {
  const { user } = request.auth! // set: the guard admitted the request
  await app.authSessions.login(request, user)
  return { instance, user: user.name }
})

app.get('/me', { onRequest: app.authGuard(['token', 'session']) }, async (request) => ({
  instance,
  user: request.auth?.user.name,
  method: request.auth?.method
}))

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close().then(() => process.exit(0)) })
app.addHook('onClose', async () => { await store.close() })

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`instance ${instance} listening on ${address}`)
