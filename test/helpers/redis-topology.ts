// Real Redis topologies for the tests, all from the Debian redis-server package (redis-cli comes
// with it), on free loopback ports, no containers: a standalone server, a three-master Cluster
// (`--cluster-enabled yes` + `redis-cli --cluster create`), and a primary with a replica watched
// by three Sentinels (`redis-server --sentinel`). Every wait has a deadline; `stop()` kills all.
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, Redis } from 'ioredis'
import type { RedisStoreOptions } from '../../src/index.js'
import { freePort, redisAvailable } from './redis.js'

export type TopologyName = 'standalone' | 'cluster' | 'sentinel'
export const TOPOLOGIES: readonly TopologyName[] = ['standalone', 'cluster', 'sentinel']

export interface RedisTopology {
  name: TopologyName
  /** A client for the test's own checks (the caller disconnects it, or `stop()` does). */
  client: () => Redis | Cluster
  /** Options for a RedisStore that owns its own connection to this topology. */
  storeOptions: (extra?: Partial<RedisStoreOptions>) => RedisStoreOptions
  /** SIGKILLs the current primary (sentinel) or one master (cluster); standalone: the server. Resolves when it is dead. */
  killPrimary: () => Promise<void>
  stop: () => Promise<void>
}

const DEADLINE_MS = 30_000

async function until (what: string, check: () => Promise<boolean>, deadlineMs = DEADLINE_MS): Promise<void> {
  const end = Date.now() + deadlineMs
  while (Date.now() < end) {
    try {
      if (await check()) return
    } catch {}
    await sleep(50)
  }
  throw new Error(`redis topology: ${what} did not happen within ${deadlineMs} ms`)
}

function cli (port: number, ...args: string[]): string {
  const result = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 })
  return `${result.stdout}${result.stderr}`
}

function launch (args: string[], dir: string): ChildProcess {
  return spawn('redis-server', ['--bind', '127.0.0.1', '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: 'ignore' })
}

async function kill (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

async function startStandalone (dir: string): Promise<RedisTopology> {
  const port = await freePort()
  const server = launch(['--port', String(port)], dir)
  await until(`redis-server on ${port}`, async () => cli(port, 'ping').includes('PONG'))
  const clients: Redis[] = []
  return {
    name: 'standalone',
    client: () => { const c = new Redis(port, '127.0.0.1'); clients.push(c); return c },
    storeOptions: (extra = {}) => ({ connection: `redis://127.0.0.1:${port}`, ...extra }),
    killPrimary: async () => { await kill(server) },
    stop: async () => { for (const c of clients) c.disconnect(); await kill(server) }
  }
}

async function startCluster (dir: string): Promise<RedisTopology> {
  const ports = [await freePort(), await freePort(), await freePort()]
  const servers = ports.map((port) => launch([
    '--port', String(port), '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
    '--cluster-node-timeout', '2000'
  ], dir))
  for (const port of ports) await until(`cluster node on ${port}`, async () => cli(port, 'ping').includes('PONG'))
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 })
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)
  for (const port of ports) await until(`cluster_state:ok on ${port}`, async () => cli(port, 'cluster', 'info').includes('cluster_state:ok'))
  const nodes = ports.map((port) => ({ host: '127.0.0.1', port }))
  const clients: Cluster[] = []
  const cluster = (): Cluster => new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1 } })
  return {
    name: 'cluster',
    client: () => { const c = cluster(); clients.push(c); return c },
    // The store does not own a client it is given; the test's teardown disconnects it.
    storeOptions: (extra = {}) => { const c = cluster(); clients.push(c); return { client: c, ...extra } },
    killPrimary: async () => { await kill(servers[0] as ChildProcess) },
    stop: async () => { for (const c of clients) c.disconnect(); for (const s of servers) await kill(s) }
  }
}

async function startSentinel (dir: string): Promise<RedisTopology> {
  const primaryPort = await freePort()
  const replicaPort = await freePort()
  const servers: ChildProcess[] = [launch(['--port', String(primaryPort)], dir)]
  await until('sentinel primary', async () => cli(primaryPort, 'ping').includes('PONG'))
  servers.push(launch(['--port', String(replicaPort), '--replicaof', '127.0.0.1', String(primaryPort)], dir))
  await until('replica in sync', async () => cli(replicaPort, 'info', 'replication').includes('master_link_status:up'))
  const sentinelPorts = [await freePort(), await freePort(), await freePort()]
  for (const port of sentinelPorts) {
    // Sentinel rewrites its configuration file: one of its own, writable.
    const conf = join(dir, `sentinel-${port}.conf`)
    writeFileSync(conf, [
      `port ${port}`, 'bind 127.0.0.1', 'protected-mode no', `dir ${dir}`,
      `sentinel monitor primary 127.0.0.1 ${primaryPort} 2`,
      'sentinel down-after-milliseconds primary 1000',
      'sentinel failover-timeout primary 5000',
      'sentinel parallel-syncs primary 1'
    ].join('\n') + '\n')
    servers.push(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }))
  }
  for (const port of sentinelPorts) {
    await until(`sentinel on ${port} sees the replica`, async () => cli(port, 'sentinel', 'replicas', 'primary').includes(String(replicaPort)))
  }
  const sentinels = sentinelPorts.map((port) => ({ host: '127.0.0.1', port }))
  const clients: Redis[] = []
  const options = { sentinels, name: 'primary', maxRetriesPerRequest: 1 }
  return {
    name: 'sentinel',
    client: () => { const c = new Redis(options); clients.push(c); return c },
    storeOptions: (extra = {}) => ({ connection: options, ...extra }),
    killPrimary: async () => {
      const current = cli(sentinelPorts[0] as number, 'sentinel', 'get-master-addr-by-name', 'primary').split('\n')[1]?.trim()
      const victim = Number(current) === replicaPort ? servers[1] : servers[0]
      await kill(victim as ChildProcess)
    },
    stop: async () => { for (const c of clients) c.disconnect(); for (const s of servers) await kill(s) }
  }
}

/** Starts a topology in a fresh directory; `stop()` also removes the directory. */
export async function startTopology (name: TopologyName): Promise<RedisTopology> {
  if (!redisAvailable) throw new Error('redis-server is not installed (apt-get install -y redis-server)')
  const dir = mkdtempSync(join(tmpdir(), `multiauth-${name}-`))
  const topology = name === 'standalone' ? await startStandalone(dir) : name === 'cluster' ? await startCluster(dir) : await startSentinel(dir)
  const stop = topology.stop
  return { ...topology, stop: async () => { await stop(); rmSync(dir, { recursive: true, force: true }) } }
}
