// The main example: a small API whose users have argon2id password hashes and API keys.
//   GET /basic   HTTP Basic only
//   GET /key     API key only (X-API-Key header)
//   GET /either  Basic or API key, whichever the client sends
//   GET /admin   either method, and the "admin" role
// Run from the repository root: npm run example   (PORT may be set; default 3000)
import Fastify from 'fastify'
import type { FastifyRequest } from 'fastify'
import multiauth, { generateApiKey, hashPassword } from '../../src/index.js'

// Your user type: what the callbacks return and `request.auth.user` is (declaration merging;
// in your application: `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser { id: string, name: string, roles: string[] }
}

// Your database. Only hashes are stored: argon2id for passwords, SHA-256 for API keys.
const john = { id: '1', name: 'john', roles: ['admin'] }
const susan = { id: '2', name: 'susan', roles: [] }
const ana = { id: '3', name: 'ana', roles: [] }
const passwords = new Map([
  ['john', { user: john, passwordHash: await hashPassword('hello') }],
  ['susan', { user: susan, passwordHash: await hashPassword('bye') }],
  // A non-ASCII password: curl sends it as UTF-8, Python requests as ISO-8859-1; both log in (docs/basic.md).
  ['ana', { user: ana, passwordHash: await hashPassword('áéíóú') }]
])
// An API key for susan, issued the way an admin script would: keep `hash`, show `key` once.
const issued = generateApiKey({ prefix: 'demo', environment: 'test' })
const apiKeys = new Map([[issued.id, { user: susan, hash: issued.hash, scopes: ['data:read'] }]])

// Credentials never reach the logs: the plugin removes access_token/api_key from every logged
// URL and message, and credential headers from any serializer that logs headers (docs/errors.md).
const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })

await app.register(multiauth, {
  realm: 'example',
  basic: { findCredential: (username) => passwords.get(username) ?? null },
  apiKey: { findKey: (id) => apiKeys.get(id) ?? null, prefix: 'demo' },
  roles: (user) => user.roles
})

const whoami = async (request: FastifyRequest): Promise<object> =>
  ({ hello: request.auth?.user.name, via: request.auth?.method })

app.get('/basic', { onRequest: app.authGuard(['basic']) }, whoami)
app.get('/key', { onRequest: app.authGuard(['apiKey']) }, whoami)
app.get('/either', { onRequest: app.authGuard(['basic', 'apiKey']) }, whoami)
app.get('/admin', { onRequest: app.authGuard({ methods: ['basic', 'apiKey'], roles: ['admin'] }) }, whoami)

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`fastify-multiauth example listening on ${address}`)
console.log(`api key for susan (shown once): ${issued.key}`)
console.log('Try it with curl (paste the lines into a shell):')
console.log('# susan\'s API key, then john\'s password, on the route that takes either')
console.log(`curl -s -H 'X-API-Key: ${issued.key}' ${address}/either -w ' HTTP %{http_code}\\n'`)
console.log(`curl -s -u john:hello ${address}/either -w ' HTTP %{http_code}\\n'`)
console.log('# a non-ASCII password (UTF-8 from curl; Python requests sends ISO-8859-1, which works too)')
console.log(`curl -s -u 'ana:áéíóú' ${address}/basic -w ' HTTP %{http_code}\\n'`)
console.log('# /admin needs the "admin" role: john has it, susan does not (403)')
console.log(`curl -s -u john:hello ${address}/admin -w ' HTTP %{http_code}\\n'`)
console.log(`curl -s -H 'X-API-Key: ${issued.key}' ${address}/admin -w ' HTTP %{http_code}\\n'`)
console.log('# a wrong password: 401 with one challenge per method')
console.log(`curl -s -i -u john:nope ${address}/either; echo`)
console.log()
