// Combining methods: one service, several ways in.
//   GET  /data      an API key: X-API-Key header or ?api_key= query parameter
//   GET  /me        any one of Basic, bearer token or API key
//   GET  /admin     Basic or token, and the user must hold the "admin" role (403 otherwise)
//   POST /transfer  mode 'all': an API key AND the same user's password, both required
//   POST /tokens    Basic → { token, expiration } (the token method's own route)
//
// Run: npx tsx examples/combined/server.ts   (PORT, default 3000; JWT_SECRET, at least 32 bytes)
import { createHash, randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import type { FastifyError } from 'fastify'
import multiauth, { hashPassword } from '../../src/index.js'
import type { BasicCredential } from '../../src/index.js'

// Your user type: what the callbacks return and `request.auth.user` is (declaration merging;
// in your application: `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser { id: string, name: string, roles: string[] }
}

const accounts = new Map<string, BasicCredential>([
  ['alice', { user: { id: 'alice', name: 'Alice', roles: ['admin'] }, passwordHash: await hashPassword('wonderland') }],
  ['bob', { user: { id: 'bob', name: 'Bob', roles: ['user'] }, passwordHash: await hashPassword('builder') }]
])

// The valid API keys, each owned by a user (mode 'all' checks both methods found the
// same one). Looked up by SHA-256, so the lookup's timing says nothing about the key; use
// generateApiKey() and apiKey.findKey for real keys (examples/api-keys-redis).
const sha256 = (s: string): string => createHash('sha256').update(s).digest('base64url')
const apiKeys = new Map<string, string>([[sha256('abc123def456'), 'alice'], [sha256('ghi789jkl012'), 'bob']])

// No `redact` needed for credentials: the plugin keeps keys, tokens and passwords out of the logs.
const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })

await app.register(multiauth, {
  realm: 'combined',
  basic: {
    findCredential: (username) => accounts.get(username) ?? null
  },
  token: {
    secret: process.env.JWT_SECRET || randomBytes(32).toString('base64url'),
    findUser: (claims) => accounts.get(claims.sub)?.user ?? null,
    routes: true // POST /tokens, for Basic-authenticated requests only
  },
  apiKey: {
    verify: (key) => {
      const owner = apiKeys.get(sha256(key))
      return owner === undefined ? null : accounts.get(owner)?.user ?? null
    },
    query: true // ?api_key= too (Flask's request.args.get('api_key')); the plugin drops it from logged URLs
  },
  // Flask-HTTPAuth's get_user_roles
  roles: (user) => user.roles
})

app.setErrorHandler((err: FastifyError, _request, reply) => {
  const status = err.statusCode ?? 500
  const error = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status < 500 ? 'bad request' : 'internal error'
  return reply.code(status).send({ error, message: status < 500 ? err.message : 'Internal server error' })
})

app.get('/data', { onRequest: app.authGuard(['apiKey']) }, async () => ({ data: 'Here\'s your protected data!' }))

app.get('/me', { onRequest: app.authGuard(['basic', 'token', 'apiKey']) }, async (request) => ({
  user: request.auth?.user.name,
  via: request.auth?.method,
  roles: request.auth?.roles
}))

app.get('/admin', { onRequest: app.authGuard({ methods: ['basic', 'token'], roles: ['admin'] }) }, async (request) => ({
  admin: request.auth?.user.name
}))

app.post('/transfer', { onRequest: app.authGuard({ methods: ['apiKey', 'basic'], mode: 'all' }) }, async (request) => ({
  ok: true,
  by: request.auth?.user.name
}))

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`combined example on ${address} (alice / wonderland is admin, bob / builder is not; API keys abc123def456 → alice, ghi789jkl012 → bob). Try it with curl:`)
console.log(`curl -s -H 'X-API-Key: abc123def456' ${address}/me -w ' HTTP %{http_code}\\n'`)
console.log('# the key also works in the query string (the plugin keeps it out of the logs)')
console.log(`curl -s '${address}/data?api_key=ghi789jkl012' -w ' HTTP %{http_code}\\n'`)
console.log('# bob is not an admin: 403')
console.log(`curl -s -u bob:builder ${address}/admin -w ' HTTP %{http_code}\\n'`)
console.log('# mode all: the key and the password, of the same user')
console.log(`curl -s -X POST -u alice:wonderland -H 'X-API-Key: abc123def456' ${address}/transfer -w ' HTTP %{http_code}\\n'`)
console.log()
