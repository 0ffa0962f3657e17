#!/usr/bin/env node
// CPU profile of one variant's server under autocannon load, and where its time goes per
// request compared with another variant (default: the bare route).
//   node bench/profile.mjs ours-api-key [seconds=8] [baseline=bare]
// Writes the .cpuprofile files under bench/profiles/ (open them in Chrome DevTools) and prints,
// per function, the self time per request of the variant, of the baseline, and the difference:
// the rows at the top are what the variant pays on top of the baseline. The profiler adds its
// own cost (about 1.5–2× the CPU per request), so read the rows against each other.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { buildPackage, load, pinHarness, serverCpu, settingsFromEnv, startRedis, startServer, stopServer, VARIANTS } from './run.mjs'

const [name = 'ours-api-key', seconds = '8', baseline = 'bare'] = process.argv.slice(2)
const settings = settingsFromEnv()
const find = (wanted) => {
  const variant = VARIANTS.find((v) => v.name === wanted && !v.todo)
  if (variant === undefined) throw new Error(`unknown variant "${wanted}"`)
  return variant
}
const chosen = [find(baseline), find(name)]
buildPackage()
pinHarness(settings)
// The Redis variants get a redis-server of their own, as `npm run bench` gives them.
const redis = chosen.some((v) => v.needs === 'redis') ? await startRedis() : undefined

/** Self time per request of each function (µs), and the server's CPU per request. */
async function profile (variant) {
  const dir = resolve('bench/profiles', `${variant.name}-${Date.now()}`)
  mkdirSync(dir, { recursive: true })
  const server = await startServer(variant, { execArgv: ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100'], pinned: settings.pin, env: variant.needs === 'redis' ? { BENCH_REDIS_URL: redis.url } : {} })
  await load(server, { ...settings, duration: 1 })
  const before = await serverCpu(server)
  // V8 stamps samples with the monotonic clock hrtime reads (µs): keep only those of the measured run.
  const from = Number(process.hrtime.bigint() / 1000n)
  const result = await load(server, { ...settings, duration: Number(seconds) })
  const to = Number(process.hrtime.bigint() / 1000n)
  const cpu = (await serverCpu(server) - before) / result.total
  await stopServer(server)
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  const data = JSON.parse(readFileSync(join(dir, file), 'utf8'))
  const selfTime = new Map()
  let at = data.startTime
  data.samples.forEach((id, i) => {
    at += data.timeDeltas[i]
    if (at >= from && at <= to) selfTime.set(id, (selfTime.get(id) ?? 0) + data.timeDeltas[i])
  })
  const byFunction = new Map()
  let total = 0
  for (const node of data.nodes) {
    const time = selfTime.get(node.id) ?? 0
    total += time
    const { functionName, url, lineNumber } = node.callFrame
    const where = url.replace(/^file:\/\//, '').replace(process.cwd() + '/', '').replace(/^.*node_modules\//, '')
    const key = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + time)
  }
  // Sampled time is wall time over the measured run; spread it over its requests.
  const wallPerRequest = 1e6 / result.rps
  const perRequest = new Map([...byFunction].map(([key, time]) => [key, (time / total) * wallPerRequest]))
  console.log(`${variant.name}: ${Math.round(result.rps)} req/s, ${cpu.toFixed(1)} µs server CPU per request (profiled), ${result.failures} failures; ${join(dir, file)}`)
  return perRequest
}

let base, mine
try {
  [base, mine] = [await profile(chosen[0]), await profile(chosen[1])]
} finally {
  redis?.stop()
}
const rows = [...new Set([...base.keys(), ...mine.keys()])]
  .map((key) => ({ key, base: base.get(key) ?? 0, mine: mine.get(key) ?? 0 }))
  .sort((a, b) => (b.mine - b.base) - (a.mine - a.base))
console.log(`\nself time per request, µs: ${name} − ${baseline} | ${baseline} | ${name} | function`)
for (const row of rows.slice(0, 30)) {
  console.log(`${(row.mine - row.base).toFixed(2).padStart(7)} ${row.base.toFixed(2).padStart(7)} ${row.mine.toFixed(2).padStart(7)}  ${row.key}`)
}
const ours = rows.filter((row) => row.key.includes('bench/.build/'))
console.log(`\nours (bench/.build/, built from src/): ${ours.reduce((n, r) => n + r.mine, 0).toFixed(2)} µs per request in ${ours.length} functions`)
