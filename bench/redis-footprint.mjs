#!/usr/bin/env node
// What the plugin keeps in Redis, measured: keys and bytes per active session, per refresh-token
// family, per access-token revocation, per "log out everywhere", per failure-budget counter and per
// per-credential counter, on a real standalone redis-server and on a real three-master Cluster.
//
//   node bench/redis-footprint.mjs                               # 5,000 items per kind, both topologies
//   FOOTPRINT_ITEMS=10000 FOOTPRINT_TOPOLOGIES=standalone node bench/redis-footprint.mjs
//   FOOTPRINT_JSON=footprint.json node bench/redis-footprint.mjs # the JSON into a file too
//
// Each kind is written through the real plugin (src/ built by tsup into bench/.build, as in
// bench/run.mjs): Fastify `inject` for the HTTP flows, `app.authTokens` for the token helpers.
// Per kind: FLUSHALL on every master, a warm-up (so the Lua scripts are loaded and the
// connections open), FLUSHALL again, `used_memory` (INFO memory) summed over the masters, then N
// items, then `used_memory` again and `MEMORY USAGE` of every key written. `used_memory` counts
// what MEMORY USAGE does not: the expires table (every key has a TTL) and the key tables' buckets,
// so it is the figure to size with. Every TTL is long (an hour or more) so nothing expires during
// a run; a TTL's length does not change a key's size.
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { buildPackage } from './run.mjs'

const ITEMS = Number(process.env.FOOTPRINT_ITEMS ?? 5000)
if (!Number.isSafeInteger(ITEMS) || ITEMS < 1000) throw new Error('FOOTPRINT_ITEMS must be an integer ≥ 1000 (fewer items leave used_memory deltas to allocator noise)')
const TOPOLOGIES = (process.env.FOOTPRINT_TOPOLOGIES ?? 'standalone,cluster').split(',').map((s) => s.trim()).filter(Boolean)
for (const name of TOPOLOGIES) if (name !== 'standalone' && name !== 'cluster') throw new Error(`FOOTPRINT_TOPOLOGIES: unknown topology "${name}" (standalone, cluster)`)
/** Requests in flight at once while writing items. */
const CONCURRENCY = 16
const DEADLINE_MS = 60_000
const SECRET = 'footprint-bench-secret-of-32-bytes!!'

if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('redis-server is not installed (apt-get install -y redis-server)')

// --- Redis processes (own, bounded, cleaned up on exit and on Ctrl-C) -------------------------

const children = new Set()
function killAll () { for (const child of children) child.kill('SIGKILL') }
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => { killAll(); process.exit(130) })

async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  return port
}

async function until (what, check) {
  const end = Date.now() + DEADLINE_MS
  while (Date.now() < end) {
    try { if (await check()) return } catch {}
    await sleep(50)
  }
  throw new Error(`${what} did not happen within ${DEADLINE_MS} ms`)
}

function cli (port, ...args) {
  const result = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 })
  return `${result.stdout}${result.stderr}`
}

async function redisServer (dir, args = []) {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: 'ignore' })
  children.add(child)
  child.once('exit', () => children.delete(child))
  await until(`redis-server on ${port}`, () => cli(port, 'ping').includes('PONG'))
  return { port, child }
}

/** A topology: its masters (one admin connection each) and the RedisStore options that reach it. */
async function startTopology (name) {
  const dir = mkdtempSync(join(tmpdir(), `multiauth-footprint-${name}-`))
  let servers
  let storeOptions
  if (name === 'standalone') {
    servers = [await redisServer(dir)]
    storeOptions = { connection: `redis://127.0.0.1:${servers[0].port}` }
  } else {
    servers = []
    for (let i = 0; i < 3; i++) servers.push(await redisServer(dir, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${i}.conf`, '--cluster-node-timeout', '2000']))
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: DEADLINE_MS })
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)
    await until('cluster_state:ok on every node', () => servers.every((s) => cli(s.port, 'cluster', 'info').includes('cluster_state:ok')))
    storeOptions = { cluster: { nodes: servers.map((s) => ({ host: '127.0.0.1', port: s.port })) } }
  }
  const masters = servers.map((s) => ({ port: s.port, admin: new Redis(s.port, '127.0.0.1', { maxRetriesPerRequest: 1 }) }))
  const version = (await masters[0].admin.info('server')).match(/^redis_version:(.*)$/m)?.[1]?.trim()
  return {
    name,
    version,
    masters,
    storeOptions,
    async stop () {
      for (const m of masters) m.admin.disconnect()
      for (const s of servers) {
        if (s.child.exitCode !== null || s.child.signalCode !== null) continue
        const exited = once(s.child, 'exit')
        s.child.kill('SIGKILL')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

// --- Measuring -------------------------------------------------------------------------------

async function usedMemory (topology) {
  let total = 0
  for (const { admin } of topology.masters) total += Number((await admin.info('memory')).match(/^used_memory:(\d+)/m)[1])
  return total
}

async function flushAll (topology) {
  for (const { admin } of topology.masters) await admin.flushall('SYNC')
}

/** Every key on every master, with its master's port, value type and MEMORY USAGE (SAMPLES 0: every element counted). */
async function keysWithUsage (topology) {
  const keys = []
  for (const { port, admin } of topology.masters) {
    const names = await admin.keys('*')
    for (let i = 0; i < names.length; i += 1000) {
      const slice = names.slice(i, i + 1000)
      const pipeline = admin.pipeline()
      for (const key of slice) pipeline.memory('USAGE', key, 'SAMPLES', 0).type(key).pttl(key)
      const replies = await pipeline.exec()
      slice.forEach((key, j) => {
        const [[e1, bytes], [e2, type], [e3, ttl]] = replies.slice(j * 3, j * 3 + 3)
        if (e1 !== null || e2 !== null || e3 !== null) throw e1 ?? e2 ?? e3
        keys.push({ key, port, bytes, type, ttl })
      })
    }
  }
  return keys
}

/** One key as it is stored: name, TTL and value (a sorted set's members with their scores, a hash's fields). */
async function example (topology, k) {
  const admin = topology.masters.find((m) => m.port === k.port).admin
  const value = k.type === 'zset' ? await admin.zrange(k.key, 0, -1, 'WITHSCORES') : k.type === 'hash' ? await admin.hgetall(k.key) : await admin.get(k.key)
  return { key: k.key, ttlMs: k.ttl, value }
}

/** Runs `write(i)` for i in [0, count), at most CONCURRENCY at once. Kinds get `(ctx, label, i)`: a label for names, the index for addresses. */
async function writeItems (count, write) {
  let next = 0
  async function worker () {
    while (next < count) await write(next++)
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
}

/** The key's kind, from the layout documented in docs/deployment.md (the prefix removed). */
function keyKind (key, value) {
  const k = key.replace(/^multiauth:/, '')
  if (/^tok:\{u:[^}]*\}:rv:/.test(k)) return 'tok:{u:<sub>}:rv:<jti>'
  if (/^tok:\{u:[^}]*\}:nb$/.test(k)) return 'tok:{u:<sub>}:nb'
  if (/^tok:\{u:[^}]*\}:fs$/.test(k)) return 'tok:{u:<sub>}:fs'
  if (k.startsWith('tok:rf:')) return 'tok:rf:<family>'
  if (k.startsWith('sess:')) return value === 'tombstone' ? 'sess:<hash> (tombstone)' : 'sess:<hash>'
  if (k.startsWith('rl:fail:ip:')) return 'rl:fail:ip:<ip>'
  if (k.startsWith('rl:fail:user:')) return 'rl:fail:user:<hash>'
  if (k.startsWith('rl:key:')) return 'rl:key:<keyId>'
  if (k.startsWith('rl:')) return 'rl:<other>'
  return 'other'
}

/**
 * One kind on one topology: a fresh app (the kind's plugin options, a RedisStore of its own),
 * a warm-up, FLUSHALL, N items, then the figures. `leftovers(keys)` names keys that are not
 * the item's (e.g. the one per-IP counter of a username run): they are reported, not hidden.
 */
async function measure (topology, kind, multiauth, RedisStore) {
  await flushAll(topology)
  const store = new RedisStore(topology.storeOptions)
  const app = await kind.app(multiauth, store)
  await app.ready()
  try {
    const ctx = { app, run: `${randomBytes(3).toString('hex')}` }
    await writeItems(8, (i) => kind.write(ctx, `warm${i}`, i))
    await flushAll(topology)
    await sleep(200)
    const before = await usedMemory(topology)
    const started = Date.now()
    await writeItems(ITEMS, (i) => kind.write(ctx, String(i).padStart(6, '0'), i))
    const seconds = (Date.now() - started) / 1000
    await sleep(200)
    const after = await usedMemory(topology)
    const keys = await keysWithUsage(topology)
    // Values only where the kind needs them (a session record and a tombstone share a key shape).
    const admin = topology.masters.map((m) => m.admin)
    for (const k of keys) {
      if (k.key.includes(':sess:')) {
        const owner = admin[topology.masters.findIndex((m) => m.port === k.port)]
        k.value = (await owner.get(k.key)) === '!destroyed' ? 'tombstone' : 'session'
      }
    }
    const byKind = new Map()
    for (const k of keys) {
      const name = keyKind(k.key, k.value)
      const entry = byKind.get(name) ?? { keys: 0, bytes: 0, type: k.type, perMaster: Object.fromEntries(topology.masters.map((m) => [m.port, 0])), example: await example(topology, k) }
      entry.keys++
      entry.bytes += k.bytes
      entry.perMaster[k.port]++
      byKind.set(name, entry)
    }
    const perMaster = topology.masters.map((m) => keys.filter((k) => k.port === m.port).length)
    return {
      kind: kind.name,
      items: ITEMS,
      seconds: Number(seconds.toFixed(1)),
      keys: keys.length,
      keysPerItem: keys.length / ITEMS,
      memoryUsagePerItem: keys.reduce((sum, k) => sum + k.bytes, 0) / ITEMS,
      usedMemoryDelta: after - before,
      usedMemoryPerItem: (after - before) / ITEMS,
      perMaster,
      byKey: Object.fromEntries([...byKind].map(([name, e]) => [name, { keys: e.keys, type: e.type, memoryUsageAvg: e.bytes / e.keys, perMaster: Object.values(e.perMaster), example: e.example }]))
    }
  } finally {
    await app.close()
    await store.close()
  }
}

// --- The kinds ---------------------------------------------------------------------------------

const HOUR = '1h'

function decode (jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'))
}

async function fastify () {
  const { default: Fastify } = await import('fastify')
  return Fastify({ logger: false })
}

const KINDS = [
  {
    name: 'session login (POST /login → app.authSessions.login)',
    note: 'the session record (a login without a previous session cookie leaves no tombstone: its anonymous session was never stored)',
    async app (multiauth, store) {
      const app = await fastify()
      await app.register(multiauth, { store, session: { secret: SECRET, secure: false, findUser: (id) => ({ id }) } })
      app.post('/login', async (request) => { await app.authSessions.login(request, { id: request.body.id }); return { ok: true } })
      return app
    },
    async write ({ app, run }, n) {
      const res = await app.inject({ method: 'POST', url: '/login', payload: { id: `user-${run}-${n}` } })
      if (res.statusCode !== 200) throw new Error(`login: ${res.statusCode} ${res.body}`)
    }
  },
  {
    name: 'session logout (login, then POST /logout → app.authSessions.logout)',
    note: 'the tombstone that replaces the destroyed session (absolute timeout, 24 h): a save in flight cannot bring it back',
    async app (multiauth, store) {
      const app = await fastify()
      await app.register(multiauth, { store, session: { secret: SECRET, secure: false, findUser: (id) => ({ id }) } })
      app.post('/login', async (request) => { await app.authSessions.login(request, { id: request.body.id }); return { ok: true } })
      app.post('/logout', async (request) => { await app.authSessions.logout(request); return { ok: true } })
      return app
    },
    async write ({ app, run }, n) {
      const login = await app.inject({ method: 'POST', url: '/login', payload: { id: `user-${run}-${n}` } })
      if (login.statusCode !== 200) throw new Error(`login: ${login.statusCode} ${login.body}`)
      const cookie = login.cookies.find((c) => c.value !== '')
      const res = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: `${cookie.name}=${cookie.value}` } })
      if (res.statusCode !== 200) throw new Error(`logout: ${res.statusCode} ${res.body}`)
    }
  },
  {
    name: 'refresh family, one per user (app.authTokens.issue)',
    note: 'the family record tok:rf:<family> and a new per-user family list tok:{u:<sub>}:fs holding it',
    async app (multiauth, store) {
      const app = await fastify()
      await app.register(multiauth, { store, token: { secret: SECRET, findUser: (claims) => ({ id: claims.sub }), refresh: true, revocation: true } })
      return app
    },
    async write ({ app, run }, n) {
      const issued = await app.authTokens.issue({ id: `user-${run}-${n}` })
      if (issued.refreshToken === undefined) throw new Error('no refresh token')
    }
  },
  {
    name: 'refresh family, ten per user (app.authTokens.issue)',
    note: 'the family record, and one more member of an existing family list: a user logged in on several devices',
    async app (multiauth, store) {
      const app = await fastify()
      await app.register(multiauth, { store, token: { secret: SECRET, findUser: (claims) => ({ id: claims.sub }), refresh: true, revocation: true } })
      return app
    },
    async write ({ app, run }, n, i) {
      const issued = await app.authTokens.issue({ id: `user-${run}-${String(Math.floor(i / 10)).padStart(6, '0')}` })
      if (issued.refreshToken === undefined) throw new Error('no refresh token')
    }
  },
  {
    name: 'access-token revocation (app.authTokens.revoke)',
    note: 'tok:{u:<sub>}:rv:<jti>, TTL = what is left of the token\'s lifetime',
    async app (multiauth, store) {
      const app = await fastify()
      await app.register(multiauth, { store, token: { secret: SECRET, findUser: (claims) => ({ id: claims.sub }), expiresIn: HOUR, revocation: true } })
      return app
    },
    async write ({ app, run }, n) {
      // Claims of a token the plugin signed (issue writes nothing without refresh).
      const { accessToken } = await app.authTokens.issue({ id: `user-${run}-${n}` })
      await app.authTokens.revoke(decode(accessToken))
    }
  },
  {
    name: '"log out everywhere" (app.authTokens.revokeAll)',
    note: 'tok:{u:<sub>}:nb, TTL = the longer of the access and refresh lifetimes',
    async app (multiauth, store) {
      const app = await fastify()
      await app.register(multiauth, { store, token: { secret: SECRET, findUser: (claims) => ({ id: claims.sub }), refresh: true, revocation: true } })
      return app
    },
    async write ({ app, run }, n) {
      await app.authTokens.revokeAll(`user-${run}-${n}`)
    }
  },
  {
    name: 'failure counter per IP (refused API key, one IPv4 address each)',
    note: 'rl:fail:ip:<ip>, one per address with a refusal in the window',
    async app (multiauth, store) {
      const app = await fastify()
      await app.register(multiauth, { store, apiKey: { findKey: () => null }, rateLimit: { failuresPerIp: { max: 20, timeWindow: HOUR }, failuresPerUser: false } })
      app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => ({ ok: true }))
      return app
    },
    async write ({ app }, n, i) {
      const index = i
      const remoteAddress = `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`
      const res = await app.inject({ url: '/', headers: { 'x-api-key': `unknown-key-${n}` }, remoteAddress: n.startsWith('warm') ? '192.0.2.1' : remoteAddress })
      if (res.statusCode !== 401 && res.statusCode !== 400) throw new Error(`refused key: ${res.statusCode} ${res.body}`)
    }
  },
  {
    name: 'failure counter per username (refused Basic password)',
    note: 'rl:fail:user:<hash>, one per username with a refusal in the window (all from one IP: its one rl:fail:ip key is in the count)',
    async app (multiauth, store) {
      const app = await fastify()
      await app.register(multiauth, { store, basic: { verify: () => null }, rateLimit: { failuresPerIp: { max: 1_000_000_000, timeWindow: HOUR }, failuresPerUser: { max: 10, timeWindow: HOUR } } })
      app.get('/', { onRequest: app.authGuard(['basic']) }, async () => ({ ok: true }))
      return app
    },
    async write ({ app }, n) {
      const authorization = `Basic ${Buffer.from(`someone-${n}@example.com:wrong`).toString('base64')}`
      const res = await app.inject({ url: '/', headers: { authorization } })
      if (res.statusCode !== 401) throw new Error(`refused password: ${res.statusCode} ${res.body}`)
    }
  },
  {
    name: 'Basic success (its counters deleted once back at zero)',
    note: 'a successful attempt gives its slot back (DECR), so the counters stay, at 0, until their window ends',
    async app (multiauth, store) {
      const app = await fastify()
      await app.register(multiauth, { store, basic: { verify: (username) => ({ id: username }) }, rateLimit: { failuresPerIp: { max: 20, timeWindow: HOUR }, failuresPerUser: { max: 10, timeWindow: HOUR } } })
      app.get('/', { onRequest: app.authGuard(['basic']) }, async () => ({ ok: true }))
      return app
    },
    async write ({ app }, n, i) {
      const index = i
      const remoteAddress = n.startsWith('warm') ? '192.0.2.1' : `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`
      const authorization = `Basic ${Buffer.from(`someone-${n}@example.com:right`).toString('base64')}`
      const res = await app.inject({ url: '/', headers: { authorization }, remoteAddress })
      if (res.statusCode !== 200) throw new Error(`Basic success: ${res.statusCode} ${res.body}`)
    }
  },
  {
    name: 'per-credential counter (one request per API key, perCredential on)',
    note: 'rl:key:<keyId> (@fastify/rate-limit\'s script), one per key used in the window',
    async app (multiauth, store) {
      const { generateApiKey } = await import('./.build/index.js')
      const records = new Map()
      const app = await fastify()
      await app.register(multiauth, {
        store,
        apiKey: { findKey: (id) => records.get(id) ?? null },
        rateLimit: { perCredential: { max: 1000, timeWindow: HOUR }, failuresPerIp: false, failuresPerUser: false }
      })
      app.get('/', { onRequest: app.authGuard(['apiKey']) }, async () => ({ ok: true }))
      app.decorate('footprintKey', (n) => {
        const generated = generateApiKey({ prefix: 'acme', environment: 'live' })
        records.set(generated.id, { user: { id: `user-${n}` }, hash: generated.hash })
        return generated.key
      })
      return app
    },
    async write ({ app }, n) {
      const res = await app.inject({ url: '/', headers: { 'x-api-key': app.footprintKey(n) } })
      if (res.statusCode !== 200) throw new Error(`API key: ${res.statusCode} ${res.body}`)
    }
  }
]

// --- Main --------------------------------------------------------------------------------------

buildPackage()
const { default: multiauth, RedisStore } = await import('./.build/index.js')
const results = []
for (const name of TOPOLOGIES) {
  const topology = await startTopology(name)
  try {
    for (const kind of KINDS) {
      const result = await measure(topology, kind, multiauth, RedisStore)
      results.push({ topology: name, redisVersion: topology.version, masters: topology.masters.length, note: kind.note, ...result })
      process.stderr.write(`[${name}] ${kind.name}: ${result.keys} keys, ${result.usedMemoryPerItem.toFixed(1)} B/item (used_memory), ${result.seconds} s\n`)
    }
  } finally {
    await topology.stop()
  }
}

const round = (x) => Math.round(x)
const lines = [
  `Redis footprint, ${ITEMS.toLocaleString('en-US')} items per kind, ${new Date().toISOString()}, redis-server ${results[0]?.redisVersion}, Node ${process.version}, key prefix "multiauth:".`,
  'Bytes per item: "MEMORY USAGE" sums MEMORY USAGE of the keys written (key, value, dict entry); "used_memory" is the INFO memory delta over all masters divided by the items (adds the expires table and hash-table buckets): size with it.',
  ''
]
for (const name of TOPOLOGIES) {
  const rows = results.filter((r) => r.topology === name)
  lines.push(`### ${name}${name === 'cluster' ? ` (${rows[0]?.masters} masters)` : ''}`, '')
  lines.push(`| item | keys / item | MEMORY USAGE B / item | used_memory B / item |${name === 'cluster' ? ' keys per master |' : ''}`)
  lines.push(`|---|---:|---:|---:|${name === 'cluster' ? '---|' : ''}`)
  for (const r of rows) {
    lines.push(`| ${r.kind} | ${r.keysPerItem.toFixed(3)} | ${round(r.memoryUsagePerItem)} | ${round(r.usedMemoryPerItem)} |${name === 'cluster' ? ` ${r.perMaster.join(' / ')} |` : ''}`)
  }
  lines.push('', '| key | type | keys | MEMORY USAGE B / key (avg) | in |', '|---|---|---:|---:|---|')
  for (const r of rows) {
    for (const [key, e] of Object.entries(r.byKey)) lines.push(`| \`${key}\` | ${e.type} | ${e.keys} | ${round(e.memoryUsageAvg)} | ${r.kind} |`)
  }
  lines.push('')
}
console.log(lines.join('\n'))
const json = JSON.stringify({ items: ITEMS, date: new Date().toISOString(), node: process.version, results }, null, 2)
console.log('```json')
console.log(json)
console.log('```')
if (process.env.FOOTPRINT_JSON) writeFileSync(process.env.FOOTPRINT_JSON, json + '\n')
