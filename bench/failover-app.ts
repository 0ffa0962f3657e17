// One app instance for bench/failover.ts, as a process of its own: Basic (failure budgets at
// their defaults), tokens (revocation, refresh, the token routes), sessions and API-key records
// with a per-credential quota, all on one RedisStore that waits for a replica's acknowledgement of
// every revocation (waitForReplicas: 1). Configured by FAILOVER_APP (JSON: the store's connection
// options, the password, the API-key records); prints `listening <port>` once it listens on a free port.
import Fastify from 'fastify'
import multiauth, { constantTimeEqual, RedisStore } from '../src/index.js'
import type { ApiKeyRecord, RedisStoreOptions } from '../src/index.js'

export interface FailoverAppConfig {
  store: RedisStoreOptions
  /** Every user's password. */
  password: string
  keys: Array<{ id: string, hash: string, revoked?: boolean }>
}

const config = JSON.parse(process.env.FAILOVER_APP ?? 'null') as FailoverAppConfig
const records = new Map<string, ApiKeyRecord>(config.keys.map(({ id, hash, revoked }) => [id, { user: { id: `svc-${id}` }, hash, revoked }]))
// Every `u<n>` exists, with the one password.
const findUser = (id: string): { id: string } | null => /^u\d+$/.test(id) ? { id } : null

const store = new RedisStore({ ...config.store, waitForReplicas: { replicas: 1 } })
const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'error' } })
await app.register(multiauth, {
  store,
  basic: { verify: (username, password) => findUser(username) !== null && constantTimeEqual(password, config.password) ? { id: username } : null },
  token: { secret: 'failover-bench-token-secret-of-32-bytes', revocation: true, refresh: true, routes: { methods: ['basic'] }, findUser: (claims) => findUser(claims.sub) },
  session: { secret: 'failover-bench-session-secret-of-32-chars', secure: false, findUser },
  apiKey: { findKey: (id) => records.get(id) ?? null, environment: 'live' },
  // All the load comes from 127.0.0.1: a per-IP budget would stop it. The per-username budget
  // stays at its default (10 refusals per 15 minutes); the quota puts API keys in Redis too.
  rateLimit: { failuresPerIp: false, perCredential: { max: 1_000_000_000, timeWindow: '1 minute' } }
})
app.post<{ Body: { id: string } }>('/login', async (request, reply) => {
  const user = findUser(request.body.id)
  if (user === null) return await reply.code(404).send()
  await app.authSessions.login(request, user)
  return 'ok'
})
app.post('/logout', async (request) => { await app.authSessions.logout(request); return 'ok' })
const ok = async (): Promise<string> => 'ok'
app.get('/token', { onRequest: app.authGuard(['token']) }, ok)
app.get('/session', { onRequest: app.authGuard(['session']) }, ok)
app.get('/basic', { onRequest: app.authGuard(['basic']) }, ok)
app.get('/key', { onRequest: app.authGuard(['apiKey']) }, ok)
app.addHook('onClose', async () => { await store.close() })

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close().then(() => process.exit(0)) })
await app.listen({ port: 0, host: '127.0.0.1' })
console.log(`listening ${(app.server.address() as { port: number }).port}`)
