// npm run example -- <name> [args...]: runs examples/<name>/server.ts (TypeScript, through tsx).
import { spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const names = readdirSync(here, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(`${here}${d.name}/server.ts`))
  .map((d) => d.name)
  .sort()
const [name = 'seed2-api', ...args] = process.argv.slice(2)
if (!names.includes(name)) {
  console.error(`unknown example "${name}"; one of: ${names.join(', ')}`)
  process.exit(2)
}
const child = spawn(process.execPath, ['--import', 'tsx', `${here}${name}/server.ts`, ...args], { stdio: 'inherit' })
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)))
