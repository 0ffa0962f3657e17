import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

/**
 * Starts `examples/<name>/server.ts` as a real process on a free port (PORT=0), the way
 * `npm run example -- <name>` does, and resolves its stdout once `ready` matches.
 * The process is killed at the end of the test.
 */
export async function startExample (t: Test, name: string, ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string, match: RegExpExecArray }> {
  const runner = fileURLToPath(new URL('../../examples/run.mjs', import.meta.url))
  const child = spawn(process.execPath, [runner, name], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`example ${name} did not start in 30 s\n${stdout}\n${stderr}`)), 30_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`example ${name} exited with ${String(code)}\n${stderr}`)) })
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const match = ready.exec(stdout)
      if (match !== null) { clearTimeout(timer); resolve({ stdout, match }) }
    })
  })
}
