import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createServer, connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** A real redis-server on a free loopback port, no persistence; `stop()` kills it, `restart()` brings it back on the same port. */
export interface RedisServer {
  port: number
  url: string
  stop (): Promise<void>
  restart (): Promise<void>
  /** SIGSTOP: the server keeps its connections open but answers nothing (a hung Redis). */
  pause (): void
  /** SIGCONT after `pause()`. */
  resume (): void
}

export const redisAvailable = spawnSync('redis-server', ['--version']).status === 0

/**
 * Whether Redis tests may run. With CI=true a missing redis-server fails the run (the
 * caller passes this to `t.fail`); locally the tests are skipped with a loud notice.
 */
export function redisSkipReason (): string | false {
  if (redisAvailable) return false
  if (process.env.CI === 'true') throw new Error('redis-server is not installed, and CI=true requires the Redis tests to run (apt-get install -y redis-server)')
  const message = '\n*** redis-server not found: SKIPPING Redis tests. Install it with `apt-get install -y redis-server`. ***\n'
  process.stderr.write(message)
  return 'redis-server not installed'
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

async function waitForPort (port: number, up: boolean, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs
  while (Date.now() < end) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (open === up) return
    await sleep(25)
  }
  throw new Error(`redis-server on port ${port} did not ${up ? 'start' : 'stop'} in ${deadlineMs} ms`)
}

export interface StartRedisOptions {
  /** Keep data across `restart()` (append-only file fsynced on every write, in this directory). */
  persistDir?: string
  /** More redis-server arguments, e.g. `['--maxmemory', '2mb', '--maxmemory-policy', 'noeviction']`. */
  extraArgs?: string[]
}

export async function startRedis (options: StartRedisOptions = {}): Promise<RedisServer> {
  const port = await freePort()
  const persistence = options.persistDir === undefined
    ? ['--appendonly', 'no']
    : ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', options.persistDir]
  let child: ChildProcess | undefined
  const launch = async (): Promise<void> => {
    child = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--protected-mode', 'yes', ...(options.extraArgs ?? [])
    ], { stdio: 'ignore' })
    await waitForPort(port, true)
  }
  const kill = async (): Promise<void> => {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child?.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    await waitForPort(port, false)
  }
  await launch()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: kill,
    restart: async () => { await kill(); await launch() },
    pause: () => { child?.kill('SIGSTOP') },
    resume: () => { child?.kill('SIGCONT') }
  }
}
