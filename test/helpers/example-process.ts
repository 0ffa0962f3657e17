import { execFile, spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Test } from 'tap'

const curlInstalled = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0

export const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))))

export interface ExampleProcess {
  /** The base URL (`http://127.0.0.1:<port>` or `http://localhost:<port>`) of the first curl line. */
  base: string
  /** The first curl line of the flow. */
  curl: string
  /** The printed shell lines (comments, assignments, curl), as a user would paste them. */
  flow: string
  /** Everything printed on stdout until the flow was complete. */
  stdout: string
  child: ChildProcess
}

/** A line of the printed flow: a comment, a curl call or a shell assignment. */
const SHELL_LINE = /^(#|curl |[A-Z_]+=|printf )/

/**
 * The flow an example prints: the run of shell lines that ends at the first empty line after a
 * curl line (every example ends its flow with one). `undefined` until it is complete.
 */
export function printedFlow (stdout: string): { flow: string, curl: string, base: string } | undefined {
  const lines = stdout.split('\n').slice(0, -1) // complete lines only: the last element is what follows the last newline
  const firstCurl = lines.findIndex((l) => l.startsWith('curl ') || /^[A-Z_]+=\$\(curl /.test(l))
  if (firstCurl === -1) return undefined
  const end = lines.findIndex((l, i) => i > firstCurl && l === '')
  if (end === -1) return undefined
  let start = end
  while (start > 0 && SHELL_LINE.test(lines[start - 1] as string)) start--
  const flow = lines.slice(start, end)
  const curl = flow.find((l) => l.startsWith('curl ')) as string
  const base = /(https?:\/\/(?:127\.0\.0\.1|localhost):\d+)/.exec(flow.join('\n'))?.[1]
  if (base === undefined) throw new Error(`no base URL in the printed flow:\n${flow.join('\n')}`)
  return { flow: flow.join('\n') + '\n', curl, base }
}

/**
 * Starts `examples/<name>/server.ts` as the README says (tsx, from the repository root) on a
 * free port, and waits (60 s at most) until it has printed its curl flow. Stopped (SIGTERM,
 * then SIGKILL after 5 s) at teardown.
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
    const timer = setTimeout(() => reject(new Error(`examples/${name} printed no curl flow in 60 s\n${stdout}\n${stderr}`)), 60_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`examples/${name} exited with ${String(code)}\n${stderr}`)) })
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const printed = printedFlow(stdout)
      if (printed !== undefined) {
        clearTimeout(timer)
        child.stdout.removeAllListeners('data')
        child.stdout.resume()
        resolve({ ...printed, stdout, child })
      }
    })
  })
}

/**
 * Runs a printed flow the way a user pastes it: `sh`, in `cwd` (cookie jars land there), with
 * the real curl. Bounded by `timeout` ms. Resolves stdout; a non-zero exit rejects.
 */
export async function runFlow (flow: string, cwd: string, timeout = 60_000): Promise<string> {
  if (!curlInstalled) throw new Error('curl is not installed (apt-get install -y curl): the examples\' printed curl flows cannot be run')
  const { stdout } = await promisify(execFile)('sh', ['-c', flow], { cwd, timeout, encoding: 'utf8' })
  return stdout
}

/** The ` HTTP <code>` markers the flows print with `curl -w`, in order. */
export function statuses (output: string): number[] {
  return [...output.matchAll(/HTTP (\d{3})/g)].map((m) => Number(m[1]))
}

export async function portOpen (port: number, host = '127.0.0.1'): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, host)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Waits (bounded, polling every 50 ms) until nothing listens on `port`; resolves whether it closed. */
export async function portClosed (port: number, withinMs = 15_000, host = '127.0.0.1'): Promise<boolean> {
  const deadline = Date.now() + withinMs
  while (await portOpen(port, host)) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return true
}
