// `npm run example [-- <name>]`: runs examples/<name>/server.ts (default: basic-and-api-key) with tsx.
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
const child = spawn(process.execPath, ['--import', 'tsx', server], { stdio: 'inherit' })
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
