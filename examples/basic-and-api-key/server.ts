// The main example: a small API whose users have argon2id password hashes and API keys.
//   GET /basic   HTTP Basic only
//   GET /key     API key only (X-API-Key header)
//   GET /either  Basic or API key, whichever the client sends
//   GET /admin   either method, and the "admin" role
// Run from the repository root: npm run example   (PORT may be set; default 3000)
import Fastify from 'fastify'
import multiauth, { generateApiKey, hashPassword } from '../../src/index.js'

interface User { id: string, name: string, roles: string[] }

// Your database. Only hashes are stored: argon2id for passwords, SHA-256 for API keys.
const john: User = { id: '1', name: 'john', roles: ['admin'] }
const susan: User = { id: '2', name: 'susan', roles: [] }
const passwords = new Map([
  ['john', { user: john, passwordHash: await hashPassword('hello') }],
  ['susan', { user: susan, passwordHash: await hashPassword('bye') }]
])
// An API key for susan, issued the way an admin script would: keep `hash`, show `key` once.
const issued = generateApiKey({ prefix: 'demo', environment: 'test' })
const apiKeys = new Map([[issued.id, { user: susan, hash: issued.hash, scopes: ['data:read'] }]])

const app = Fastify({
  logger: {
    level: process.env.LOG_LEVEL ?? 'info',
    // Credentials never reach the logs, even at debug level.
    redact: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]']
  }
})

await app.register(multiauth, {
  realm: 'example',
  basic: { findUser: (username) => passwords.get(username) ?? null },
  apiKey: { lookup: (id) => apiKeys.get(id) ?? null, prefix: 'demo' },
  roles: (user) => (user as User).roles
})

const whoami = async (request: import('fastify').FastifyRequest): Promise<object> =>
  ({ hello: (request.user as User).name, via: request.auth?.method })

app.get('/basic', { onRequest: app.authGuard(['basic']) }, whoami)
app.get('/key', { onRequest: app.authGuard(['apiKey']) }, whoami)
app.get('/either', { onRequest: app.authGuard(['basic', 'apiKey']) }, whoami)
app.get('/admin', { onRequest: app.authGuard({ methods: ['basic', 'apiKey'], roles: ['admin'] }) }, whoami)

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`fastify-multiauth example listening on ${address}`)
console.log(`api key for susan (shown once): ${issued.key}`)
console.log('try (the API key is susan\'s, the password john\'s):')
console.log(`curl -s -H 'X-API-Key: ${issued.key}' ${address}/either`)
console.log(`curl -s -u john:hello ${address}/either`)
