// `npm run example [-- <name>]`: runs examples/<name>/server.ts (default: basic-and-api-key) with tsx.
//
// Stopping: Ctrl-C reaches the whole process group. A SIGTERM (or SIGINT, SIGHUP) sent to this
// process is forwarded to the example. A SIGTERM sent to npm is not: npm passes it to the
// `sh -c` it runs scripts in, and sh dies without passing it on, leaving this process
// orphaned with the server still listening. So this process also watches its parent and stops
// the example when the parent is gone.
import { spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('.', import.meta.url))
const name = process.argv[2] ?? 'basic-and-api-key'
const server = `${root}${name}/server.ts`
if (!existsSync(server)) {
  const names = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory() && existsSync(`${root}${d.name}/server.ts`)).map((d) => d.name)
  console.error(`No example "${name}". Available: ${names.join(', ')}`)
  process.exit(2)
}
const child = spawn(process.execPath, ['--import', 'tsx', server, ...process.argv.slice(3)], { stdio: 'inherit' })

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP']
const stop = (signal) => { if (child.exitCode === null && child.signalCode === null) child.kill(signal) }
for (const signal of SIGNALS) process.on(signal, () => stop(signal))

const parent = process.ppid
const orphanCheck = setInterval(() => { if (process.ppid !== parent) stop('SIGTERM') }, 250)

child.on('exit', (code, signal) => {
  clearInterval(orphanCheck)
  if (signal === null) process.exit(code ?? 0)
  // Die of the same signal, as a shell expects (exit status 128 + n).
  for (const s of SIGNALS) process.removeAllListeners(s)
  process.kill(process.pid, signal)
})
