// Memory of the verified-token cache (token.cache, on by default): heap held by `max` cached
// tokens, against the same app with `cache: false`. Run: node --expose-gc bench/token-cache-memory.mjs [entries]
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import multiauth from '../dist/index.js'

const entries = Number(process.argv[2] ?? 10_000)
const SECRET = 'a-bench-secret-of-at-least-32-bytes-long!'

/** Lets inject's deferred cleanup run, then collects: a heap reading that does not depend on when V8 last collected. */
async function settle () {
  for (let i = 0; i < 3; i++) {
    await sleep(100)
    globalThis.gc()
  }
}

async function heldBy (cache) {
  const app = Fastify()
  await app.register(multiauth, { token: { secret: SECRET, findUser: (claims) => ({ id: claims.sub }), ...(cache === undefined ? {} : { cache }) } })
  app.get('/', { onRequest: app.authGuard(['token']) }, async () => 'ok')
  await app.ready()
  const tokens = []
  // Typical access tokens: a user id, a scope list, iss-less (≈ 300 characters).
  for (let i = 0; i < entries; i++) tokens.push((await app.authTokens.issue({ id: `user-${i}` }, { scopes: ['read', 'write'] })).accessToken)
  await settle()
  const before = process.memoryUsage().heapUsed
  for (const token of tokens) {
    const res = await app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
  }
  await settle()
  const after = process.memoryUsage().heapUsed
  await app.close()
  return { bytes: after - before, tokenLength: tokens[0].length }
}

const off = await heldBy(false)
const on = await heldBy(undefined)
const perEntry = (on.bytes - off.bytes) / Math.min(entries, 10_000)
console.log(`token.cache default (max 10,000): ${entries} tokens of ${on.tokenLength} characters hold ${((on.bytes - off.bytes) / 2 ** 20).toFixed(1)} MiB more heap than cache: false (${Math.round(perEntry)} bytes per cached entry)`)
