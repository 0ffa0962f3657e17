#!/usr/bin/env node
// CPU profile of one variant's server under autocannon load, summarised by self time.
//   node bench/profile.mjs ours-api-key [seconds=8]
// Writes the .cpuprofile under bench/profiles/ (open it in Chrome DevTools) and prints the
// hottest functions, then ours (bench/.build/, built from src/).
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { buildPackage, load, settingsFromEnv, startServer, stopServer, VARIANTS } from './run.mjs'

const [name = 'ours-api-key', seconds = '8'] = process.argv.slice(2)
const variant = VARIANTS.find((v) => v.name === name && !v.todo)
if (variant === undefined) throw new Error(`unknown variant "${name}"`)
const dir = resolve('bench/profiles', `${name}-${Date.now()}`)
mkdirSync(dir, { recursive: true })
const settings = settingsFromEnv()
buildPackage()
const server = await startServer(variant, { execArgv: ['--cpu-prof', '--cpu-prof-dir', dir] })
const result = await load(server, { ...settings, duration: Number(seconds) })
await stopServer(server)
console.log(`${name}: ${Math.round(result.rps)} req/s, p99 ${result.p99} ms, ${result.failures} failures`)

const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'))
const selfTicks = new Map()
for (const id of profile.samples) selfTicks.set(id, (selfTicks.get(id) ?? 0) + 1)
const byFunction = new Map()
let total = 0
for (const node of profile.nodes) {
  const ticks = selfTicks.get(node.id) ?? 0
  total += ticks
  const { functionName, url, lineNumber } = node.callFrame
  const where = url.replace(/^file:\/\//, '').replace(process.cwd() + '/', '')
  const key = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`
  byFunction.set(key, (byFunction.get(key) ?? 0) + ticks)
}
const sorted = [...byFunction].sort((a, b) => b[1] - a[1])
const show = (rows) => rows.forEach(([key, ticks]) => console.log(`${(100 * ticks / total).toFixed(2).padStart(6)}%  ${key}`))
console.log(`\nhottest (self time, ${total} samples):`)
show(sorted.slice(0, 25))
console.log('\nours (bench/.build/index.js, built from src/):')
show(sorted.filter(([key]) => key.includes('bench/.build/')).slice(0, 25))
console.log(`\nprofile: ${join(dir, file)}`)
