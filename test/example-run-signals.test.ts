import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { portClosed, portOpen, printedFlow, root } from './helpers/example-process.js'

// `npm run example` stopped with SIGTERM (a process manager, `kill`, a CI job ending) must not
// leave the example server running. npm passes the signal to the `sh -c` it runs the script
// in, and sh dies without passing it on: before examples/run.mjs watched its parent, its
// server kept listening (the first two tests failed then).

/** Spawns `command` (its own process group, killed at teardown) and waits for the example's printed flow; resolves its port. */
async function started (t: Test, command: string, args: string[]): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  t.teardown(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} })
  let stdout = ''
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no curl flow in 60 s\n${stdout}\n${stderr}`)), 60_000)
    const early = (code: number | null): void => { clearTimeout(timer); reject(new Error(`exited with ${String(code)}\n${stderr}`)) }
    child.once('exit', early)
    const onData = (chunk: Buffer): void => {
      stdout += chunk.toString()
      const printed = printedFlow(stdout)
      if (printed === undefined) return
      // Only `early` goes (not every 'exit' listener, and not on each later chunk): the test's own
      // 'exit' listener, added after this, must survive the example's shutdown output.
      clearTimeout(timer)
      child.off('exit', early)
      child.stdout?.off('data', onData)
      child.stdout?.resume()
      resolve(printed.base)
    }
    child.stdout?.on('data', onData)
  })
  const port = Number(new URL(base).port)
  t.ok(await portOpen(port), `the example listens on ${port}`)
  return { child, port }
}

t.test('SIGTERM to `npm run example`: npm exits and the server stops (its port closes)', async (t) => {
  const { child, port } = await started(t, 'npm', ['run', 'example', '--', 'basic-and-api-key'])
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
  t.ok(await portClosed(port), 'no server left behind')
})

t.test('SIGTERM to the `sh -c` npm runs the script in: the server stops', async (t) => {
  const { child, port } = await started(t, 'sh', ['-c', 'node examples/run.mjs tokens'])
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
  t.ok(await portClosed(port), 'no server left behind')
})

t.test('SIGTERM to examples/run.mjs itself is forwarded, and run.mjs dies of it like a shell expects', async (t) => {
  const { child, port } = await started(t, process.execPath, ['examples/run.mjs', 'basic-and-api-key'])
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])))
  child.kill('SIGTERM')
  t.same(await exited, [null, 'SIGTERM'])
  t.ok(await portClosed(port), 'no server left behind')
})
