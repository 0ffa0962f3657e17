// An API that authenticates with API keys kept in Redis, with per-key rate limits.
//
//   npm run example -- api-keys-redis     (or: npx tsx examples/api-keys-redis/server.ts)
//
// Uses REDIS_URL when set, else starts its own throwaway redis-server. Prints the REDIS_URL for
// admin.ts (which manages keys in that same Redis) and the curl lines to try.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import multiauth, { RedisStore } from '../../src/index.js'
import { issueKey, openRepository } from './admin.js'
import { redisKeys, SetupError } from './keys.js'
import { startLocalRedis } from './local-redis.js'

/** No Redis is a setup problem, not a bug: one line on stderr saying what to do, no stack trace. */
function exitOnSetupError (err: unknown): never {
  if (!(err instanceof SetupError)) throw err
  console.error(`api-keys-redis: ${err.message}`)
  process.exit(1)
}

const local = process.env.REDIS_URL ? undefined : await startLocalRedis().catch(exitOnSetupError)
const redisUrl = process.env.REDIS_URL || (local as { url: string }).url
// Reachable? Asked once with a client that does not retry, so a wrong REDIS_URL is one clear line.
const hint = process.env.REDIS_URL ? '; start that Redis, fix REDIS_URL, or unset it to let the example start its own redis-server' : ''
await (await openRepository(redisUrl).catch((err: unknown) => exitOnSetupError(err instanceof SetupError ? new SetupError(err.message + hint) : err))).close()
// One connection for the key repository and the plugin's store. The example owns it (a store
// given a client never closes it), and fails fast while Redis is away, as an owned one would.
const client = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
client.on('error', () => {}) // reconnect attempts are retried by ioredis; requests answer 503 meanwhile
const store = new RedisStore({ client, commandTimeout: 500 })
const keys = redisKeys(client)

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } }) // the plugin keeps keys out of the logs
// Before the plugin: onClose hooks run last-added first, so the plugin writes the usage it counted
// (and closes its store) while this connection is still open.
app.addHook('onClose', async () => { client.disconnect(); local?.stop() })

await app.register(multiauth, {
  realm: 'orders-api',
  store,
  apiKey: {
    prefix: 'demo',
    environment: process.env.KEY_ENVIRONMENT ?? 'live',
    findKey: async (id) => await keys.get(id),
    // Requests per key and the last use, written at most once a minute per key: `admin.ts usage <id>`.
    usage: true
  },
  // 60 requests a minute per key unless its record says otherwise; 20 refused requests a minute per IP.
  rateLimit: { perCredential: { max: 60, timeWindow: '1 minute' }, failuresPerIp: { max: 20, timeWindow: '1 minute' } }
})

// One error shape: { error, message }, whatever went wrong.
app.setErrorHandler((err: { statusCode?: number, code?: string, message: string }, _request, reply) => {
  const status = err.statusCode ?? 500
  const error = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 429 ? 'too_many_requests' : status === 503 ? 'unavailable' : 'error'
  void reply.status(status).send({ error, message: status >= 500 && status !== 503 ? 'Internal error' : err.message })
})

app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async (request) => ({
  user: request.auth?.user ?? null,
  keyId: request.auth?.method === 'apiKey' ? request.auth.keyId : undefined,
  scopes: request.auth?.scopes
}))
app.get('/orders', { onRequest: app.authGuard({ methods: ['apiKey'], scopes: ['orders:read'] }) }, async () => ({
  orders: [{ id: 1, item: 'coffee' }]
}))

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close().then(() => process.exit(0)) })

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
const { key } = await issueKey(keys, 'demo-user', { scopes: ['orders:read'] })
const admin = `REDIS_URL=${redisUrl} npx tsx examples/api-keys-redis/admin.ts`
console.log(`REDIS_URL=${redisUrl}`)
console.log(`listening on ${address}; keys live in the Redis above (manage them with: ${admin} issue|list|usage|rotate|revoke).`)
console.log('Try it with curl: a demo key for demo-user was issued (shown once); paste these lines into a shell:')
console.log(`KEY=${key}`)
console.log(`curl -s ${address}/orders -H "X-API-Key: $KEY" -w ' HTTP %{http_code}\\n'`)
console.log('# no key: 401 with a challenge that names the header')
console.log(`curl -s -i ${address}/orders; echo`)
console.log('# issue a key without the orders:read scope with the admin script (same Redis): /me works, /orders is 403')
console.log(`OTHER=$(${admin} issue carol --json | sed -E 's/.*"key":"([^"]+)".*/\\1/')`)
console.log(`curl -s ${address}/me -H "X-API-Key: $OTHER" -w ' HTTP %{http_code}\\n'`)
console.log(`curl -s ${address}/orders -H "X-API-Key: $OTHER" -w ' HTTP %{http_code}\\n'`)
console.log('# how often a key was used, and when last (written at its first request, then at most once a minute)')
console.log(`${admin} usage $KEY`)
console.log()
