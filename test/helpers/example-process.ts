import { spawn } from 'node:child_process'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))))

export interface ExampleProcess {
  /** The base URL from the curl line the example printed. */
  base: string
  /** The whole curl line. */
  curl: string
  /** Everything printed on stdout until then. */
  stdout: string
}

/**
 * Starts `examples/<name>/server.ts` as the README says (tsx, from the repository root) on a
 * free port, and waits (30 s at most) for the ready `curl` line it prints. Stopped at teardown.
 */
export async function startExample (t: Test, name: string, env: NodeJS.ProcessEnv = {}): Promise<ExampleProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${name}/server.ts`], {
    cwd: root,
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
  })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`examples/${name} printed no curl line in 30 s\n${stdout}\n${stderr}`)), 30_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`examples/${name} exited with ${String(code)}\n${stderr}`)) })
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const match = /^(curl .*?(http:\/\/127\.0\.0\.1:\d+)\S*)$/m.exec(stdout)
      if (match !== null) {
        clearTimeout(timer)
        resolve({ curl: match[1] as string, base: match[2] as string, stdout })
      }
    })
  })
}
