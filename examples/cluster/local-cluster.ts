// A throwaway three-master Redis Cluster on loopback, for trying the example: three
// `redis-server --cluster-enabled yes` processes joined by `redis-cli --cluster create` (both
// from the redis-server package: apt-get install redis-server, brew install redis), no
// replicas, no persistence, no containers. `stop()` stops the servers and removes their files.
import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'

/** Something the user has to fix (no redis-server, a server that does not start): one line, no stack trace. */
export class SetupError extends Error {}

export interface LocalCluster {
  nodes: Array<{ host: string, port: number }>
  /** Stops every server (SIGTERM, then SIGKILL after 5 s) and removes the directory. Idempotent. */
  stop: () => Promise<void>
  /** The same, synchronously and without waiting (SIGKILL): for the process's `exit` event. */
  kill: () => void
}

async function isFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer().once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/**
 * A free port for a cluster node. Not the OS's pick for port 0: a node also listens on
 * port + 10000 (the cluster bus), so its port must be 55535 or less, and the OS picks ephemeral
 * ports up to 60999 (Linux) or 65535 (macOS).
 */
async function freeNodePort (taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000)
    if (taken.has(port) || taken.has(port + 10_000)) continue
    if (await isFree(port) && await isFree(port + 10_000)) return port
  }
  throw new SetupError('found no free pair of ports (port, port + 10000) between 20000 and 39999 for a cluster node')
}

const run = promisify(execFile)
async function cli (port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 })
  return stdout
}

/** Polls `check` every 100 ms for at most `ms`. */
async function until (what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await sleep(100)
  }
  throw new SetupError(`${what} did not happen within ${ms / 1000} s`)
}

export async function startLocalCluster (): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'multiauth-cluster-example-'))
  const children: ChildProcess[] = []
  let stopped = false
  const kill = (): void => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    if (!stopped) rmSync(dir, { recursive: true, force: true })
    stopped = true
  }
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }))
    kill()
  }
  try {
    const nodes: Array<{ host: string, port: number }> = []
    const taken = new Set<number>()
    for (let i = 0; i < 3; i++) {
      const port = await freeNodePort(taken)
      taken.add(port)
      taken.add(port + 10_000)
      nodes.push({ host: '127.0.0.1', port })
      const child = spawn('redis-server', [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '5000'
      ], { stdio: 'ignore' })
      children.push(child)
      const failed = new Promise<never>((_resolve, reject) => {
        child.once('error', (err: NodeJS.ErrnoException) => reject(new SetupError(err.code === 'ENOENT'
          ? 'needs redis-server (and redis-cli), which are not installed: apt-get install redis-server (Debian/Ubuntu) or brew install redis (macOS)'
          : `could not start redis-server: ${err.message}`)))
        child.once('exit', (code) => reject(new SetupError(`redis-server on port ${port} exited (code ${String(code)}) while starting`)))
      })
      failed.catch(() => {}) // raced below; never an unhandled rejection
      await Promise.race([until(`redis-server on port ${port} answering`, async () => (await cli(port, 'ping')).includes('PONG')), failed])
    }
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 })
      .catch((err: Error & { stdout?: string }) => { throw new SetupError(`redis-cli --cluster create failed: ${err.stdout ?? err.message}`) })
    await until('the cluster (cluster_state:ok on every node)', async () => {
      for (const node of nodes) if (!(await cli(node.port, 'cluster', 'info')).includes('cluster_state:ok')) return false
      return true
    })
    return { nodes, stop, kill }
  } catch (err) {
    kill()
    throw err
  }
}
