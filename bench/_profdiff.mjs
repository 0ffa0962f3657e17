// usage: node /tmp/profdiff.mjs variantA variantB seconds
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { spawnSync } from 'node:child_process'
import { buildPackage, load, settingsFromEnv, startServer, stopServer, VARIANTS, serverCpu } from '/work/main/bench/run.mjs'
const [a, b, seconds = '5'] = process.argv.slice(2)
const settings = settingsFromEnv()
buildPackage()
spawnSync('taskset', ['-a', '-pc', '0', String(process.pid)])
async function prof (name) {
  const variant = VARIANTS.find((v) => v.name === name)
  const dir = resolve('/tmp/profiles', `${name}-${Date.now()}`)
  mkdirSync(dir, { recursive: true })
  const server = await startServer(variant, { execArgv: ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100'], pinned: true })
  await load(server, { ...settings, duration: 1 })
  const c0 = await serverCpu(server)
  const result = await load(server, { ...settings, duration: Number(seconds) })
  const cpu = (await serverCpu(server) - c0) / result.total
  await stopServer(server)
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'))
  const dt = new Map()
  // time deltas per sample
  const self = new Map()
  for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + profile.timeDeltas[i])
  const by = new Map()
  let total = 0
  for (const node of profile.nodes) {
    const t = self.get(node.id) ?? 0
    total += t
    const { functionName, url, lineNumber } = node.callFrame
    const key = `${functionName || '(anon)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/\/work\/main\//, '')}:${lineNumber + 1}`
    by.set(key, (by.get(key) ?? 0) + t)
  }
  // total profiled time ≈ wall seconds; but we want per request: t / total requests of the whole profile period
  console.log(`${name}: ${Math.round(result.rps)} req/s, cpu ${cpu.toFixed(1)} µs/req`)
  return { by, reqs: result.total, wall: total }
}
const A = await prof(a), B = await prof(b)
// normalise: µs per request over the measured run (approx: profile covers warm-up too; scale by share)
const per = (P, k) => (P.by.get(k) ?? 0) / P.wall  // share of wall time
const keys = new Set([...A.by.keys(), ...B.by.keys()])
const rows = [...keys].map((k) => [k, per(A, k), per(B, k)])
const rA = 1e6 / (A.reqs / Number(seconds)), rB = 1e6 / (B.reqs / Number(seconds)) // µs wall per request
rows.sort((x, y) => (y[2] * rB - y[1] * rA) - (x[2] * rB - x[1] * rA))
console.log('wall µs/req', rA.toFixed(1), rB.toFixed(1))
for (const [k, sa, sb] of rows.slice(0, 40)) console.log((sb * rB - sa * rA).toFixed(2).padStart(7), (sa * rA).toFixed(2).padStart(7), (sb * rB).toFixed(2).padStart(7), k)
