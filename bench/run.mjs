#!/usr/bin/env node
// Benchmarks: our guard against a bare route and against the peers, on this machine, in one run.
//
//   npm run bench                                   # full run, writes docs/benchmarks.md + .svg
//   BENCH_DURATION=1 BENCH_WARMUP=0.5 BENCH_ROUNDS=3 BENCH_VARIANTS=bare,ours-api-key npm run bench
//
// Each variant is its own server process (bench/servers/<file>, on 127.0.0.1, a free port; it imports src/ as built by tsup);
// autocannon drives it from this process. Every round measures every variant once, in a
// rotated order (so no variant always runs first or right after another), with a warm-up
// before each measured run. Ratios compare a variant to the bare route of the SAME round,
// which cancels most of the drift of a shared machine; the table shows their median.
import { fork, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { renderChart } from './chart.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..')

/**
 * The variants. Adding one = one file under bench/servers/ (see common.mjs) + one line here.
 * `peers`: the peer variants doing the same check (ours should be ≥ 1.0× each).
 * `compare`: variants of ours this one is the same check as, with something added (the ratio, no target).
 * `target`: the minimum ratio to bare from the issue. `needs: 'redis'`: the harness starts a
 * redis-server and passes its URL as BENCH_REDIS_URL.
 */
export const VARIANTS = [
  { name: 'bare', file: 'bare.mjs', label: 'bare route (no auth)' },
  { name: 'ours-basic-ct', file: 'ours-basic-ct.mjs', label: 'ours: Basic, verify + constantTimeEqual', peers: ['peer-basic-auth'], target: 0.90 },
  { name: 'ours-basic-argon2', file: 'ours-basic-argon2.mjs', label: 'ours: Basic, findCredential + argon2id, no cache' },
  { name: 'ours-basic-argon2-cache', file: 'ours-basic-argon2.mjs', args: ['--cache'], label: 'ours: Basic, findCredential + argon2id + cache', target: 0.85 },
  { name: 'ours-api-key', file: 'ours-api-key.mjs', label: 'ours: API key, hashed lookup', peers: ['peer-bearer-auth', 'peer-bearer-auth-hashed', 'peer-passport'], target: 0.90 },
  // The same guard with a subscriber on every event and tracing channel (issue 15): what listening costs.
  { name: 'ours-api-key-events', file: 'ours-api-key.mjs', args: ['--subscribe'], label: 'ours: API key, hashed lookup, one subscriber on every event and tracing channel', compare: ['ours-api-key'] },
  { name: 'ours-any', file: 'ours-any.mjs', label: 'ours: any-of guard (basic, token, apiKey), last matches', peers: ['peer-auth'] },
  { name: 'ours-jwt-hs256', file: 'ours-jwt-hs256.mjs', label: 'ours: JWT HS256, token.cache off', peers: ['peer-jwt'], target: 0.90 },
  { name: 'ours-jwt-hs256-cache', file: 'ours-jwt-hs256-cache.mjs', label: 'ours: JWT HS256, token.cache on (the default)', peers: ['peer-jwt'], target: 0.90 },
  { name: 'ours-jwt-eddsa', file: 'ours-jwt-eddsa.mjs', label: 'ours: JWT EdDSA, token.cache off', peers: ['peer-jwt-eddsa'] },
  { name: 'ours-jwt-eddsa-cache', file: 'ours-jwt-eddsa.mjs', args: ['--cache'], label: 'ours: JWT EdDSA, token.cache on (the default)', peers: ['peer-jwt-eddsa'] },
  { name: 'ours-session-memory', file: 'ours-session.mjs', label: 'ours: session, memory store', peers: ['peer-session'] },
  // The peer does 1 GET + 1 SET per request (rolling, as @fastify/session is normally used), ours 1 GET: see peer-session-redis.mjs.
  { name: 'ours-session-redis', file: 'ours-session.mjs', args: ['--redis'], label: 'ours: session, Redis store', needs: 'redis', peers: ['peer-session-redis'] },
  { name: 'ours-session-redis-no-autopipelining', file: 'ours-session.mjs', args: ['--redis', '--no-autopipelining'], label: 'ours: session, Redis store, ioredis auto-pipelining off', needs: 'redis', compare: ['ours-session-redis'] },
  { name: 'ours-jwt-revocation-redis', file: 'ours-jwt-revocation.mjs', label: 'ours: JWT HS256 + revocation (one MGET per request), Redis store, token.cache off as the peer', needs: 'redis', peers: ['peer-jwt-redis-denylist'] },
  { name: 'ours-jwt-revocation-redis-no-autopipelining', file: 'ours-jwt-revocation.mjs', args: ['--no-autopipelining'], label: 'ours: JWT HS256 + revocation, Redis store, ioredis auto-pipelining off', needs: 'redis', compare: ['ours-jwt-revocation-redis'] },
  { name: 'peer-basic-auth', file: 'peer-basic-auth.mjs', label: 'peer: @fastify/basic-auth', peer: true },
  { name: 'peer-jwt', file: 'peer-jwt.mjs', label: 'peer: @fastify/jwt HS256, jwtVerify in onRequest', peer: true },
  { name: 'peer-jwt-eddsa', file: 'peer-jwt-eddsa.mjs', label: 'peer: @fastify/jwt EdDSA, jwtVerify in onRequest', peer: true },
  { name: 'peer-bearer-auth', file: 'peer-bearer-auth.mjs', label: 'peer: @fastify/bearer-auth (keys kept in clear)', peer: true },
  { name: 'peer-bearer-auth-hashed', file: 'peer-bearer-auth-hashed.mjs', label: 'peer: @fastify/bearer-auth, auth() doing the same hashed lookup', peer: true },
  { name: 'peer-auth', file: 'peer-auth.mjs', label: 'peer: @fastify/auth (basic-auth or bearer-auth), last matches', peer: true },
  { name: 'peer-passport', file: 'peer-passport.mjs', label: 'peer: @fastify/passport + passport-http-bearer (needs @fastify/session)', peer: true },
  { name: 'peer-session', file: 'peer-session.mjs', label: 'peer: @fastify/session alone (memory store)', peer: true },
  { name: 'peer-session-redis', file: 'peer-session-redis.mjs', label: 'peer: @fastify/session + a minimal ioredis store (GET + SET per request, rolling)', needs: 'redis', peer: true },
  { name: 'peer-jwt-redis-denylist', file: 'peer-jwt-redis-denylist.mjs', label: 'peer: @fastify/jwt HS256, `trusted` doing one MGET (jti denylist + not-before)', needs: 'redis', peer: true }
]

function numberFromEnv (name, fallback, min) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number ≥ ${min} (got "${raw}")`)
  return value
}

export function settingsFromEnv () {
  return {
    duration: numberFromEnv('BENCH_DURATION', 10, 0.1),
    warmup: numberFromEnv('BENCH_WARMUP', 3, 0),
    rounds: Math.floor(numberFromEnv('BENCH_ROUNDS', 3, 1)),
    connections: Math.floor(numberFromEnv('BENCH_CONNECTIONS', 10, 1)),
    pipelining: Math.floor(numberFromEnv('BENCH_PIPELINING', 1, 1)),
    only: (process.env.BENCH_VARIANTS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    // Empty: print only, write nothing.
    outDir: process.env.BENCH_OUT_DIR === undefined ? join(root, 'docs') : process.env.BENCH_OUT_DIR === '' ? '' : resolve(process.env.BENCH_OUT_DIR),
    pin: process.env.BENCH_PIN !== '0' && canPin()
  }
}

/**
 * On a small machine autocannon and the server fight for the same cores, and the scheduler's
 * choices show up as noise. With taskset (util-linux) and ≥ 2 cores, each server runs alone on
 * the last core and this process (autocannon) on the others. BENCH_PIN=0 turns it off.
 */
function canPin () {
  return os.platform() === 'linux' && os.cpus().length >= 2 &&
    spawnSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' }).status === 0
}

const lastCore = () => os.cpus().length - 1

/** Keeps this process (autocannon) off the servers' core. */
export function pinHarness (settings) {
  if (settings.pin) pin(process.pid, `0-${lastCore() - 1}`)
}

/** `-a`: every thread of the process (libuv's pool and V8's helpers too), and those it makes later. */
function pin (pid, cores) {
  const result = spawnSync('taskset', ['-a', '-pc', cores, String(pid)], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`taskset -a -pc ${cores} ${pid} failed: ${result.stderr}`)
}

export function selectVariants (only) {
  const known = new Set(VARIANTS.map((v) => v.name))
  for (const name of only) if (!known.has(name)) throw new Error(`unknown variant "${name}" (known: ${[...known].join(', ')})`)
  const chosen = VARIANTS.filter((v) => !v.todo && (only.length === 0 || only.includes(v.name) || v.name === 'bare'))
  const skipped = VARIANTS.filter((v) => v.todo && (only.length === 0 || only.includes(v.name)))
  return { chosen, skipped }
}

/**
 * The servers import the package as users get it: src/ bundled by tsup (esbuild), without
 * the tsx loader, into bench/.build/ (dist/ is left alone).
 */
export function buildPackage () {
  const tsup = join(root, 'node_modules', '.bin', 'tsup')
  const result = spawnSync(tsup, ['src/index.ts', '--no-config', '--format', 'esm', '--target', 'node22', '--out-dir', 'bench/.build', '--silent'], { cwd: root, encoding: 'utf8', timeout: 60_000 })
  if (result.status !== 0) throw new Error(`building src/ for the benchmark failed:\n${result.stderr}${result.error ?? ''}`)
}

async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  return port
}

/** A throwaway redis-server on a free port, for the variants with `needs: 'redis'`. */
export async function startRedis () {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  child.on('error', () => {})
  // Never outlived by it: stopped when this script ends, also when it is interrupted or killed
  // with SIGTERM (a timeout), not only when the script stops it itself.
  process.once('exit', () => child.kill())
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      child.kill()
      process.exit(128 + os.constants.signals[signal])
    })
  }
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    const up = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (up) return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill() }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  child.kill()
  throw new Error('redis-server did not start (is it installed?)')
}

/** Starts one variant's server and waits for its port and credentials. */
export async function startServer (variant, { env = {}, execArgv = [], pinned = false } = {}) {
  const child = fork(join(here, 'servers', variant.file), variant.args ?? [], {
    execArgv,
    env: { ...process.env, NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  if (pinned) pin(child.pid, String(lastCore()))
  const timer = setTimeout(() => child.kill(), 30_000)
  try {
    const [message] = await Promise.race([
      once(child, 'message'),
      once(child, 'exit').then(([code]) => { throw new Error(`${variant.name}: server exited (${code}) before it was ready`) })
    ])
    if (message?.ready !== true) throw new Error(`${variant.name}: unexpected first message ${JSON.stringify(message)}`)
    return { child, url: `http://127.0.0.1:${message.port}/`, headers: message.headers, unauthenticatedStatus: message.unauthenticatedStatus }
  } catch (err) {
    child.kill()
    throw err
  } finally {
    clearTimeout(timer)
  }
}

export async function stopServer (server) {
  if (server.child.exitCode !== null) return
  const exited = once(server.child, 'exit')
  server.child.disconnect()
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

/** A benchmark that measures nothing is worse than none: prove the check runs and admits. */
async function checkServer (variant, server) {
  const ok = await fetch(server.url, { headers: server.headers })
  if (ok.status !== 200) throw new Error(`${variant.name}: valid credentials got ${ok.status}`)
  const anonymous = await fetch(server.url)
  if (anonymous.status !== server.unauthenticatedStatus) {
    throw new Error(`${variant.name}: a request without credentials got ${anonymous.status}, expected ${server.unauthenticatedStatus}`)
  }
}

/** CPU time (µs, user + system) the server process has used so far. */
export async function serverCpu (server) {
  const reply = new Promise((resolve) => {
    const onMessage = (message) => {
      if (typeof message?.cpu !== 'number') return
      server.child.off('message', onMessage)
      resolve(message.cpu)
    }
    server.child.on('message', onMessage)
  })
  server.child.send('cpu')
  return reply
}

export async function load (server, { duration, connections, pipelining, amount }) {
  const result = await autocannon({
    url: server.url,
    headers: server.headers,
    connections,
    pipelining,
    ...(amount === undefined ? { duration } : { amount }),
    timeout: 10
  })
  const total = result['2xx']
  const failures = result.non2xx + result.errors + result.timeouts
  return { rps: total / result.duration, p99: result.latency.p99, failures, total }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export function summarise (chosen, rounds) {
  const rows = chosen.map((variant) => {
    const runs = rounds.map((round) => round.get(variant.name))
    const ratios = rounds.map((round) => round.get(variant.name).rps / round.get('bare').rps)
    // The same comparison by the server's own CPU time per request: bare's cost / this one's.
    const cpuRatios = rounds.map((round) => round.get('bare').cpuPerRequest / round.get(variant.name).cpuPerRequest)
    const against = (names) => (names ?? []).filter((p) => rounds[0].has(p)).map((peer) => ({
      peer,
      ratio: median(rounds.map((round) => round.get(variant.name).rps / round.get(peer).rps))
    }))
    const peers = against(variant.peers)
    const compared = against(variant.compare)
    return {
      variant,
      rps: median(runs.map((r) => r.rps)),
      p99: median(runs.map((r) => r.p99)),
      ratio: median(ratios),
      ratioMin: Math.min(...ratios),
      ratioMax: Math.max(...ratios),
      cpu: median(runs.map((r) => r.cpuPerRequest)),
      cpuRatio: median(cpuRatios),
      failures: runs.reduce((n, r) => n + r.failures, 0),
      peers,
      compared
    }
  })
  return rows
}

const fmt = (n, digits = 2) => n.toFixed(digits)
const int = (n) => Math.round(n).toLocaleString('en-US')

function verdict (row) {
  const notes = []
  if (row.variant.target !== undefined) notes.push(`${row.ratio >= row.variant.target ? 'meets' : 'MISSES'} ≥ ${fmt(row.variant.target)}`)
  for (const { peer, ratio } of row.peers) notes.push(`${fmt(ratio)}× ${peer}${ratio >= 1 ? '' : ' (MISSES ≥ 1.0)'}`)
  for (const { peer, ratio } of row.compared ?? []) notes.push(`${fmt(ratio)}× ${peer}`)
  return notes.join('; ')
}

export function markdownTable (rows) {
  const lines = [
    '| variant | req/s (median) | p99 ms (median) | × bare, same round (median; min–max) | server CPU µs/req (median) | × bare by CPU | target / vs peer |',
    '|---|---:|---:|---:|---:|---:|---|'
  ]
  for (const row of rows) {
    const failures = row.failures > 0 ? ` ⚠ ${row.failures} non-2xx/errors` : ''
    lines.push(`| \`${row.variant.name}\` — ${row.variant.label}${failures} | ${int(row.rps)} | ${row.p99} | ${fmt(row.ratio)} (${fmt(row.ratioMin)}–${fmt(row.ratioMax)}) | ${fmt(row.cpu, 1)} | ${fmt(row.cpuRatio)} | ${verdict(row)} |`)
  }
  return lines.join('\n')
}

export const KEEP_MARKER = '<!-- Everything below this line is kept by `npm run bench`; write notes and memory figures here. -->'

const loadAverage = (values) => values.map((l) => l.toFixed(2)).join(' / ')

/** `started`: when the run began and the load average then (the machine may get busier during it). */
function environment (settings, started) {
  const cpus = os.cpus()
  return [
    `- Date: ${started.date.toISOString()} (start of the run)`,
    `- Machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}; load average (1 / 5 / 15 min) at start ${loadAverage(started.load)}, at the end ${loadAverage(os.loadavg())}`,
    `- Node ${process.version}; autocannon ${JSON.parse(readFileSync(join(root, 'node_modules/autocannon/package.json'), 'utf8')).version}, ${settings.connections} connections, pipelining ${settings.pipelining}`,
    `- ${settings.rounds} rounds; per variant and round: ${settings.warmup} s warm-up, then ${settings.duration} s measured`,
    `- ${settings.pin ? `Each server pinned to core ${lastCore()}, autocannon to the others (taskset)` : 'Not pinned to cores'}; server CPU per request from \`process.cpuUsage()\` in the server, before and after each measured run`
  ].join('\n')
}

export function writeReport (settings, rows, skipped, started = { date: new Date(), load: os.loadavg() }) {
  mkdirSync(settings.outDir, { recursive: true })
  const mdPath = join(settings.outDir, 'benchmarks.md')
  let kept = ''
  try {
    const previous = readFileSync(mdPath, 'utf8')
    const at = previous.indexOf(KEEP_MARKER)
    if (at !== -1) kept = previous.slice(at + KEEP_MARKER.length)
  } catch {}
  writeFileSync(join(settings.outDir, 'benchmarks.svg'), renderChart(rows))
  const md = `# Benchmarks

What the guard costs per request, against a bare Fastify route and against the plugins you
would use instead. Generated by \`npm run bench\` (bench/run.mjs); numbers are from one
machine and one run, so read the **ratios**, which compare each variant with the bare route
measured in the same round.

${environment(settings, started)}

${markdownTable(rows)}
${skipped.length > 0 ? `\nNot measured yet (TODO in bench/run.mjs): ${skipped.map((v) => `\`${v.name}\``).join(', ')}.\n` : ''}
![Requests per second relative to the bare route](benchmarks.svg)

Each server is a separate Node process on 127.0.0.1 with one \`GET /\` route answering
\`{"hello":"world"}\`, the same credentials for ours and the peers (bench/servers/fixtures.mjs),
logger off. Before measuring, the harness checks that valid credentials get 200 and that a
request without them is refused, so every variant really runs its check.

Two ratios: **× bare, same round** is requests/s over bare's requests/s, what a client sees
(the issue's targets are judged on it). **× bare by CPU** is bare's server CPU time per
request over the variant's: the cost of the check itself, independent of how fast
autocannon, sharing the machine, can send. Where the two differ, the server was not the
bottleneck of that run.

Run it yourself: \`npm run bench\`. Environment variables: \`BENCH_DURATION\` (s, default 10),
\`BENCH_WARMUP\` (s, default 3), \`BENCH_ROUNDS\` (default 3), \`BENCH_CONNECTIONS\` (default 10),
\`BENCH_PIPELINING\` (default 1), \`BENCH_VARIANTS\` (comma list; \`bare\` is always included),
\`BENCH_OUT_DIR\` (default \`docs\`).

${KEEP_MARKER}${kept === '' ? '\n' : kept}`
  writeFileSync(mdPath, md)
  return mdPath
}

export async function main (settings = settingsFromEnv()) {
  const { chosen, skipped } = selectVariants(settings.only)
  const started = { date: new Date(), load: os.loadavg() }
  let redis
  const servers = new Map()
  const stopAll = async () => {
    await Promise.all([...servers.values()].map(stopServer))
    redis?.stop()
  }
  process.once('SIGINT', () => { stopAll().finally(() => process.exit(130)) })
  try {
    buildPackage()
    pinHarness(settings)
    if (chosen.some((v) => v.needs === 'redis')) redis = await startRedis()
    for (const variant of chosen) {
      const server = await startServer(variant, { env: redis === undefined ? {} : { BENCH_REDIS_URL: redis.url }, pinned: settings.pin })
      servers.set(variant.name, server)
      await checkServer(variant, server)
    }
    const rounds = []
    const nameWidth = Math.max(24, ...chosen.map((v) => v.name.length))
    for (let r = 0; r < settings.rounds; r++) {
      const round = new Map()
      // Rotate the order each round so position effects (thermal, neighbours) average out.
      const order = chosen.map((_, i) => chosen[(i + r) % chosen.length])
      for (const variant of order) {
        const server = servers.get(variant.name)
        if (settings.warmup > 0) await load(server, { ...settings, duration: settings.warmup })
        const cpuBefore = await serverCpu(server)
        const result = await load(server, settings)
        result.cpuPerRequest = (await serverCpu(server) - cpuBefore) / Math.max(1, result.total)
        round.set(variant.name, result)
        console.error(`round ${r + 1}/${settings.rounds} ${variant.name.padEnd(nameWidth)} ${int(result.rps).padStart(8)} req/s  p99 ${result.p99} ms  ${result.cpuPerRequest.toFixed(1)} µs CPU/req${result.failures > 0 ? `  ${result.failures} failures` : ''}`)
      }
      rounds.push(round)
    }
    const rows = summarise(chosen, rounds)
    console.log(markdownTable(rows))
    if (settings.outDir !== '') console.log(`\nwritten: ${writeReport(settings, rows, skipped, started)}`)
    return rows
  } finally {
    await stopAll()
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
}
