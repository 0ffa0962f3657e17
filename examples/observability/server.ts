// Security events and metrics: an API with Basic (argon2id), an API key, tokens with refresh and
// revocation, and a cookie session, whose security events (docs/events.md) become
//   - Prometheus metrics at GET /metrics (prom-client; metrics.ts), and
//   - an audit log: one JSON line per event through a child of the app's pino logger (audit.ts).
//   GET  /me      any method: session, Basic, bearer token or API key
//   GET  /admin   Basic or token, and the "admin" role (alice has it, bob does not: 403)
//   POST /login   Basic → a session cookie; POST /logout ends it (a session-authenticated POST
//                 must come from this site: Origin)
//   POST /tokens, /tokens/refresh, /tokens/revoke   the token method's own routes
//   GET  /metrics the counters and the latency histogram
// Run: npm run example -- observability   (PORT, default 3000; LOG_LEVEL for the request logs,
// default warn; the audit lines are written whatever LOG_LEVEL says). It prints curl lines that
// produce each kind of event, and the metrics they add up to.
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import multiauth, { generateApiKey, hashPassword } from '../../src/index.js'
import type { ApiKeyRecord, BasicCredential, MultiauthUser } from '../../src/index.js'
import { auditLog } from './audit.js'
import { authMetrics } from './metrics.js'

// Your user type: what the callbacks return and `request.auth.user` is (declaration merging;
// in your application: `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser { id: string, name: string, roles: string[] }
}

// Your database: argon2id hashes of passwords, SHA-256 hashes of API keys.
const alice: MultiauthUser = { id: 'alice', name: 'Alice', roles: ['admin'] }
const bob: MultiauthUser = { id: 'bob', name: 'Bob', roles: ['user'] }
const accounts = new Map<string, BasicCredential>([
  ['alice', { user: alice, passwordHash: await hashPassword('wonderland') }],
  ['bob', { user: bob, passwordHash: await hashPassword('builder') }]
])
const byId = new Map([[alice.id, alice], [bob.id, bob]])
// bob's API key, issued the way an admin script would: keep `hash`, show `key` once.
const issued = generateApiKey({ prefix: 'demo', environment: 'live' })
const apiKeys = new Map<string, ApiKeyRecord>([[issued.id, { user: bob, hash: issued.hash, scopes: ['reports:read'] }]])

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })

// Subscribed before the first request, and unsubscribed when the app closes.
const metrics = authMetrics()
const stopAudit = auditLog(app.log)
app.addHook('onClose', async () => { metrics.stop(); stopAudit() })

await app.register(multiauth, {
  realm: 'observability',
  basic: { findCredential: (username) => accounts.get(username) ?? null },
  token: {
    // A real deployment sets JWT_SECRET (at least 32 bytes) so tokens survive restarts.
    secret: process.env.JWT_SECRET || randomBytes(32).toString('base64url'),
    findUser: (claims) => byId.get(claims.sub) ?? null,
    refresh: true,
    revocation: true,
    routes: true // POST /tokens (Basic or session), /tokens/refresh, /tokens/revoke
  },
  apiKey: { prefix: 'demo', findKey: (id) => apiKeys.get(id) ?? null },
  session: {
    secret: process.env.SESSION_SECRET || randomBytes(32).toString('base64url'),
    secure: false, // local HTTP only (warning FSTMA001): in production keep the default, true, and serve HTTPS
    findUser: (id) => byId.get(id) ?? null
  },
  roles: (user) => user.roles,
  // Small enough to hit with curl: 3 refused passwords per username a minute (the default is 10
  // per 15 minutes), 30 refused credentials per client IP a minute.
  rateLimit: { failuresPerUser: { max: 3, timeWindow: '1m' }, failuresPerIp: { max: 30, timeWindow: '1m' } }
})

app.get('/me', { onRequest: app.authGuard(['session', 'basic', 'token', 'apiKey']) }, async (request) => ({
  user: request.auth?.user.name,
  via: request.auth?.method
}))
app.get('/admin', { onRequest: app.authGuard({ methods: ['basic', 'token'], roles: ['admin'] }) }, async (request) => ({
  admin: request.auth?.user.name
}))

app.post('/login', { onRequest: app.authGuard(['basic']) }, async (request, reply) => {
  const auth = request.auth
  if (auth === null) return await reply.code(401).send() // not reached: the guard admits no anonymous request
  await app.authSessions.login(request, auth.user)
  return { loggedIn: auth.user.name }
})
app.post('/logout', { onRequest: app.authGuard(['session']) }, async (request) => {
  await app.authSessions.logout(request)
  return { loggedOut: true }
})

// Prometheus scrapes this. In production serve it on an internal port, or guard it.
app.get('/metrics', async (_request, reply) => {
  return await reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
const status = "-w ' HTTP %{http_code}\\n'"
const field = (name: string): string => `sed -E 's/.*"${name}":"([^"]+)".*/\\1/'`
console.log(`fastify-multiauth observability example listening on ${address} (users alice/wonderland, admin; bob/builder)`)
console.log('Each security event is one audit line ("audit":true) in this terminal. Paste these lines into a shell (sh, bash, zsh):')
console.log('# authenticated (basic), then refused: no credentials (reason missing), a wrong password (wrong-password)')
console.log(`curl -s -u alice:wonderland ${address}/me ${status}`)
console.log(`curl -s ${address}/me ${status}`)
console.log(`curl -s -u alice:wrong ${address}/me ${status}`)
console.log('# authenticated (apiKey) and api-key:used: bob\'s API key (shown once)')
console.log(`KEY=${issued.key}`)
console.log(`curl -s -H "X-API-Key: $KEY" ${address}/me ${status}`)
console.log('# forbidden: bob has no "admin" role (403)')
console.log(`curl -s -u bob:builder ${address}/admin ${status}`)
console.log('# rate-limited: four guesses at the password of "admin": three refused (401), the fourth is over the budget (429)')
console.log(`curl -s -o /dev/null -u admin:guess "${address}/me?attempt=[1-4]" -w 'HTTP %{http_code}\\n'`)
console.log('# token:issued (Basic on POST /tokens), then the access token on /admin')
console.log(`TOKENS=$(curl -s -u alice:wonderland -X POST ${address}/tokens); ACCESS=$(echo "$TOKENS" | ${field('access_token')}); REFRESH=$(echo "$TOKENS" | ${field('refresh_token')})`)
console.log(`curl -s -H "Authorization: Bearer $ACCESS" ${address}/admin ${status}`)
console.log('# token:refreshed, then token:refresh-reused: the spent refresh token again (400 invalid_grant, its family revoked)')
console.log(`curl -s -o /dev/null -X POST -d "refresh_token=$REFRESH" ${address}/tokens/refresh -w 'HTTP %{http_code}\\n'`)
console.log(`curl -s -X POST -d "refresh_token=$REFRESH" ${address}/tokens/refresh ${status}`)
console.log('# token:revoked (log out), then the revoked access token is refused (reason revoked)')
console.log(`curl -s -X POST -H "Authorization: Bearer $ACCESS" ${address}/tokens/revoke -w 'HTTP %{http_code}\\n'`)
console.log(`curl -s -H "Authorization: Bearer $ACCESS" ${address}/me ${status}`)
console.log('# session:login (cookie jar "jar"), the session in use, a POST without Origin (forbidden: same-site, 403), session:logout')
console.log(`curl -s -c jar -b jar -u alice:wonderland -X POST ${address}/login ${status}`)
console.log(`curl -s -b jar ${address}/me ${status}`)
console.log(`curl -s -b jar -X POST ${address}/logout ${status}`)
console.log(`curl -s -c jar -b jar -X POST -H "Origin: ${address}" ${address}/logout ${status}`)
console.log('# what it all added up to (multiauth_* counters and the latency histogram)')
console.log(`curl -s ${address}/metrics`)
console.log()
