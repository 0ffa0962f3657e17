// An API that authenticates with API keys kept in Redis, with per-key rate limits.
//
//   npx tsx examples/api-keys-redis/server.ts
//
// Uses REDIS_URL when set, else starts its own local redis-server. Prints a ready curl line.
// Manage keys with admin.ts against the same REDIS_URL (the server prints it).
import Fastify from 'fastify'
import multiauth, { RedisStore } from '../../src/index.js'
import { issueKey } from './admin.js'
import { redisKeys } from './keys.js'
import { startLocalRedis } from './local-redis.js'

const local = process.env.REDIS_URL ? undefined : await startLocalRedis()
const redisUrl = process.env.REDIS_URL ?? (local as { url: string }).url
const store = new RedisStore({ connection: redisUrl, commandTimeout: 500 })
const keys = redisKeys(store.client)

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn', redact: ['req.headers["x-api-key"]'] } })

await app.register(multiauth, {
  realm: 'orders-api',
  store,
  apiKey: {
    prefix: 'demo',
    environment: process.env.KEY_ENVIRONMENT ?? 'live',
    lookup: async (id) => await keys.get(id)
  },
  // 60 requests a minute per key unless its record says otherwise; 20 refused requests a minute per IP.
  rateLimit: { max: 60, timeWindow: 60_000, failuresPerIp: { max: 20, timeWindow: 60_000 } }
})

// The seeds' error shape: { error, message }, whatever went wrong.
app.setErrorHandler((err: { statusCode?: number, code?: string, message: string }, _request, reply) => {
  const status = err.statusCode ?? 500
  const error = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 429 ? 'too_many_requests' : status === 503 ? 'unavailable' : 'error'
  void reply.status(status).send({ error, message: status >= 500 && status !== 503 ? 'Internal error' : err.message })
})

app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async (request) => ({
  user: request.user,
  keyId: request.auth?.method === 'apiKey' ? request.auth.keyId : undefined,
  scopes: request.auth?.scopes
}))
app.get('/orders', { onRequest: app.authGuard({ methods: ['apiKey'], scopes: ['orders:read'] }) }, async () => ({
  orders: [{ id: 1, item: 'coffee' }]
}))

app.addHook('onClose', async () => { await store.close(); local?.stop() })
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close().then(() => process.exit(0)) })

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
const { key } = await issueKey(keys, 'demo-user', { scopes: ['orders:read'] })
console.log(`REDIS_URL=${redisUrl}`)
console.log(`listening on ${address}; a demo key was issued for demo-user. Try:`)
console.log(`curl -H 'X-API-Key: ${key}' ${address}/orders`)
