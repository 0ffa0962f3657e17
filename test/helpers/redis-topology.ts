// Real Redis topologies for the tests, all from the Debian redis-server package (redis-cli comes
// with it), on free loopback ports, no containers: a standalone server, a three-master Cluster
// (`--cluster-enabled yes` + `redis-cli --cluster create`, optionally with one replica per
// master), and a primary with a replica watched by three Sentinels (`redis-server --sentinel`).
// Every wait has a deadline; `stop()` kills every process and removes the directory.
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import type { RedisStoreOptions, RedisStoreSettings } from '../../src/index.js'
import { freePort, redisAvailable, redisSkipReason } from './redis.js'

export type TopologyName = 'standalone' | 'cluster' | 'sentinel'
export const ALL_TOPOLOGIES: readonly TopologyName[] = ['standalone', 'cluster', 'sentinel']

/**
 * The topologies the Redis-backed tests run against: all three, or the comma-separated list in
 * MULTIAUTH_TOPOLOGIES (a local shortcut, e.g. `standalone`). CI=true always runs all three.
 */
export const TOPOLOGIES: readonly TopologyName[] = (() => {
  const wanted = process.env.MULTIAUTH_TOPOLOGIES
  if (wanted === undefined || wanted === '' || process.env.CI === 'true') return ALL_TOPOLOGIES
  const names = wanted.split(',').map((name) => name.trim())
  for (const name of names) {
    if (!ALL_TOPOLOGIES.includes(name as TopologyName)) throw new Error(`MULTIAUTH_TOPOLOGIES: unknown topology "${name}" (known: ${ALL_TOPOLOGIES.join(', ')})`)
  }
  return names as TopologyName[]
})()

export interface TopologyOptions {
  /** Keep data across `down()`/`up()` (append-only file fsynced on every write). */
  persist?: boolean
  /** More redis-server arguments for every data node, e.g. `['--maxmemory', '2mb']`. */
  extraArgs?: string[]
  /** Cluster only: one replica per master (six nodes), so a killed master fails over. */
  replicas?: boolean
}

export interface RedisTopology {
  name: TopologyName
  /** A client for the test's own checks (disconnected by `stop()`). */
  client: () => Redis | Cluster
  /** Options for a RedisStore that owns its own connection to this topology. */
  storeOptions: (extra?: RedisStoreSettings) => RedisStoreOptions
  /** Every key matching `pattern` on every primary (KEYS is per node). */
  keys: (pattern: string) => Promise<string[]>
  /** CONFIG SET on every data node (primaries and replicas). */
  configSet: (parameter: string, value: string) => Promise<void>
  /** FLUSHALL on every primary (replicas follow): an empty topology, whatever the slots. */
  flush: () => Promise<void>
  /** Calls of `command` (lower case, e.g. 'mget') since start, summed over every primary (INFO commandstats). */
  commandCalls: (command: string) => Promise<number>
  /** The ports of the current primaries (one, or the Cluster's masters). */
  primaryPorts: () => number[]
  /** Calls of every command since start (INFO commandstats, e.g. 'get', 'cluster|slots'), summed over every primary. */
  commandStats: () => Promise<Map<string, number>>
  /** Stops every data node (Sentinels keep running): Redis is unreachable. */
  down: () => Promise<void>
  /** Starts them again on the same ports and roles; resolves when the topology serves again. */
  up: () => Promise<void>
  /** SIGSTOP every data node: connections stay open, nothing answers (a hung Redis). */
  pause: () => void
  /** SIGCONT after `pause()`. */
  resume: () => void
  /**
   * SIGSTOP every node that is a replica now (the primaries keep serving): nothing acknowledges a
   * write. With `disconnect`, also closes the replication links on the primaries (CLIENT KILL TYPE
   * replica) once the replicas are stopped, so what the primaries write from then on reaches no
   * replica at all, not even its socket buffer (a SIGSTOPped process still receives into that).
   */
  pauseReplicas: (options?: { disconnect?: boolean }) => Promise<void>
  /** SIGCONT the replicas `pauseReplicas()` stopped (they reconnect to their primary on their own). */
  resumeReplicas: () => void
  /**
   * Resolves when every primary has a replica online that has acknowledged everything the primary
   * wrote (INFO replication: its offset equals master_repl_offset), so a failover now loses nothing.
   * Standalone, and a Cluster without replicas: at once.
   */
  replicated: () => Promise<void>
  /**
   * SIGKILLs the current primary (sentinel) or one master (cluster; with `key`, the master serving
   * that key's slot); standalone: the server. Resolves when it is dead.
   */
  killPrimary: (key?: string) => Promise<void>
  /** The port of the primary serving `key` (cluster: its slot's master; otherwise the one primary). */
  primaryFor: (key: string) => number
  /** Resolves when the topology serves writes again after `killPrimary()` (a replica promoted). */
  recovered: () => Promise<void>
  stop: () => Promise<void>
}

const DEADLINE_MS = 60_000

// Every redis-server this module started and that still runs, and every directory not yet removed:
// killed and removed when the process exits, so a test or script that throws before `stop()` (or a
// topology that fails to start) leaves no server behind.
const running = new Set<ChildProcess>()
const directories = new Set<string>()
function started (child: ChildProcess): ChildProcess {
  running.add(child)
  child.once('exit', () => running.delete(child))
  return child
}
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
  for (const dir of directories) rmSync(dir, { recursive: true, force: true })
})

async function until (what: string, check: () => Promise<boolean> | boolean, deadlineMs = DEADLINE_MS): Promise<void> {
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

/** A data node: its port, arguments and process, relaunchable on the same port. */
class Node {
  child: ChildProcess | undefined
  constructor (readonly port: number, private readonly args: string[], private readonly dir: string, private readonly options: TopologyOptions) {}

  async start (): Promise<void> {
    const persistence = this.options.persist === true
      ? ['--appendonly', 'yes', '--appendfsync', 'always', '--appendfilename', `appendonly-${this.port}.aof`, '--appenddirname', `aof-${this.port}`]
      : ['--appendonly', 'no']
    // A replica's first full sync waits `repl-diskless-sync-delay` (5 s by default) for others to
    // join it; at 0 a replica is in sync as soon as it connects.
    this.child = started(spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--protected-mode', 'no', '--save', '', '--dir', this.dir,
      '--repl-diskless-sync-delay', '0',
      ...persistence, ...this.args, ...(this.options.extraArgs ?? [])
    ], { stdio: 'ignore' }))
    await until(`redis-server on ${this.port}`, () => cli(this.port, 'ping').includes('PONG'))
  }

  get alive (): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  async kill (): Promise<void> {
    const child = this.child
    if (child === undefined || !this.alive) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGCONT') // a paused node must be able to die
    child.kill('SIGKILL')
    await exited
  }

  signal (name: 'SIGSTOP' | 'SIGCONT'): void {
    if (this.alive) this.child?.kill(name)
  }
}

interface Parts {
  nodes: Node[]
  primaries: () => number[]
  client: () => Redis | Cluster
  storeOptions: (extra: RedisStoreSettings) => RedisStoreOptions
  serving: () => boolean
  killPrimary: (key?: string) => Promise<void>
  primaryFor: (key: string) => number
  /** Whether every primary is meant to have a replica (sentinel; cluster with `replicas`). */
  hasReplicas: boolean
  extraStop?: () => Promise<void>
}

const isReplica = (port: number): boolean => /^role:slave/m.test(cli(port, 'info', 'replication'))

/** Whether the primary on `port` has a replica online that acknowledged all it wrote. */
function replicatedOn (port: number): boolean {
  const info = cli(port, 'info', 'replication')
  const offset = /^master_repl_offset:(\d+)/m.exec(info)?.[1]
  const replicas = [...info.matchAll(/^slave\d+:.*state=(\w+),offset=(\d+)/gm)]
  return offset !== undefined && replicas.length > 0 && replicas.every(([, state, acked]) => state === 'online' && acked === offset)
}

async function standalone (dir: string, options: TopologyOptions): Promise<Parts> {
  const node = new Node(await freePort(), [], dir, options)
  await node.start()
  return {
    nodes: [node],
    primaries: () => [node.port],
    client: () => new Redis(node.port, '127.0.0.1', { maxRetriesPerRequest: 1 }),
    storeOptions: (extra) => ({ connection: `redis://127.0.0.1:${node.port}`, ...extra }),
    serving: () => cli(node.port, 'ping').includes('PONG'),
    killPrimary: async () => { await node.kill() },
    primaryFor: () => node.port,
    hasReplicas: false
  }
}

/**
 * CLUSTER NODES as seen by `node`: each line is `<id> <ip>:<port>@<bus> <flags> <master> <ping>
 * <pong> <epoch> <link> <slot ranges…>` (a range is `from-to` or one slot).
 */
function clusterNodes (node: Node): Array<{ port: number, master: boolean, failed: boolean, ranges: Array<[number, number]> }> {
  return cli(node.port, 'cluster', 'nodes').split('\n').filter((line) => line.trim() !== '').map((line) => {
    const fields = line.trim().split(' ')
    const flags = (fields[2] ?? '').split(',')
    const ranges = fields.slice(8).filter((r) => /^\d+(-\d+)?$/.test(r)).map((r): [number, number] => {
      const [from, to = from] = r.split('-').map(Number) as [number, number?]
      return [from, to]
    })
    return { port: Number((fields[1] ?? '').split('@')[0]?.split(':')[1]), master: flags.includes('master'), failed: flags.includes('fail'), ranges }
  })
}

async function cluster (dir: string, options: TopologyOptions): Promise<Parts> {
  const count = options.replicas === true ? 6 : 3
  const nodes: Node[] = []
  for (let i = 0; i < count; i++) {
    const port = await freePort()
    nodes.push(new Node(port, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'], dir, options))
  }
  for (const node of nodes) await node.start()
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', options.replicas === true ? '1' : '0', '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 })
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)
  const live = (): Node[] => nodes.filter((n) => n.alive)
  // Serving: every live node says cluster_state:ok and every master that holds slots is alive. (Right
  // after a master dies the others still say ok until cluster-node-timeout has passed.)
  const serving = (): boolean => {
    const nodesLive = live()
    if (!nodesLive.every((n) => cli(n.port, 'cluster', 'info').includes('cluster_state:ok'))) return false
    const alive = new Set(nodesLive.map((n) => n.port))
    return clusterNodes(nodesLive[0] as Node).filter((n) => n.master && n.ranges.length > 0).every((n) => alive.has(n.port))
  }
  await until('cluster_state:ok on every node', serving)
  const replicasInSync = (): boolean => live().every((n) => {
    const replication = cli(n.port, 'info', 'replication')
    return /^role:master/m.test(replication) || replication.includes('master_link_status:up')
  })
  // A replica that has not finished its first sync cannot be promoted (its data is too old).
  await until('every replica in sync with its master', replicasInSync)
  const seeds = nodes.map((n) => ({ host: '127.0.0.1', port: n.port }))
  const primaries = (): number[] => live().filter((n) => /^role:master/m.test(cli(n.port, 'info', 'replication'))).map((n) => n.port)
  const primaryFor = (key: string): number => {
    const asked = live()[0] as Node
    const slot = Number(cli(asked.port, 'cluster', 'keyslot', key).trim())
    const owner = clusterNodes(asked).find((n) => n.master && !n.failed && n.ranges.some(([from, to]) => slot >= from && slot <= to))
    if (owner === undefined) throw new Error(`no master serves slot ${slot} of ${key}`)
    return owner.port
  }
  return {
    nodes,
    primaries,
    client: () => new Cluster(seeds, { redisOptions: { maxRetriesPerRequest: 1 } }),
    storeOptions: (extra) => ({ cluster: { nodes: seeds }, ...extra }),
    serving,
    killPrimary: async (key) => {
      const port = key === undefined ? primaries()[0] : primaryFor(key)
      await nodes.find((n) => n.port === port)?.kill()
    },
    primaryFor,
    hasReplicas: options.replicas === true
  }
}

async function sentinel (dir: string, options: TopologyOptions): Promise<Parts> {
  const primary = new Node(await freePort(), [], dir, options)
  await primary.start()
  const replica = new Node(await freePort(), ['--replicaof', '127.0.0.1', String(primary.port)], dir, options)
  await replica.start()
  await until('replica in sync', () => cli(replica.port, 'info', 'replication').includes('master_link_status:up'))
  const sentinelPorts = [await freePort(), await freePort(), await freePort()]
  const sentinels: ChildProcess[] = []
  for (const port of sentinelPorts) {
    // Sentinel rewrites its configuration file: one of its own, writable.
    const conf = join(dir, `sentinel-${port}.conf`)
    writeFileSync(conf, [
      `port ${port}`, 'bind 127.0.0.1', 'protected-mode no', `dir ${dir}`,
      `sentinel monitor primary 127.0.0.1 ${primary.port} 2`,
      'sentinel down-after-milliseconds primary 1000',
      'sentinel failover-timeout primary 5000',
      'sentinel parallel-syncs primary 1'
    ].join('\n') + '\n')
    sentinels.push(started(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })))
  }
  for (const port of sentinelPorts) {
    await until(`sentinel on ${port} sees the replica`, () => cli(port, 'sentinel', 'replicas', 'primary').includes(String(replica.port)))
  }
  const current = (): number => Number(cli(sentinelPorts[0] as number, 'sentinel', 'get-master-addr-by-name', 'primary').split('\n')[1]?.trim())
  const connection = { sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })), name: 'primary', maxRetriesPerRequest: 1 }
  return {
    nodes: [primary, replica],
    primaries: () => [current()],
    client: () => new Redis(connection),
    storeOptions: (extra) => ({ connection, ...extra }),
    serving: () => {
      const port = current()
      return [primary, replica].some((n) => n.port === port && n.alive) && /^role:master/m.test(cli(port, 'info', 'replication'))
    },
    killPrimary: async () => {
      const port = current()
      await [primary, replica].find((n) => n.port === port)?.kill()
    },
    primaryFor: current,
    hasReplicas: true,
    extraStop: async () => {
      for (const s of sentinels) {
        if (s.exitCode !== null || s.signalCode !== null) continue
        const exited = new Promise((resolve) => s.once('exit', resolve))
        s.kill('SIGKILL')
        await exited
      }
    }
  }
}

/** Starts a topology in a fresh directory; `stop()` also removes the directory. */
export async function startTopology (name: TopologyName, options: TopologyOptions = {}): Promise<RedisTopology> {
  if (!redisAvailable) throw new Error('redis-server is not installed (apt-get install -y redis-server)')
  const dir = mkdtempSync(join(tmpdir(), `multiauth-${name}-`))
  directories.add(dir)
  const clients: Array<Redis | Cluster> = []
  let parts: Parts
  try {
    parts = name === 'standalone' ? await standalone(dir, options) : name === 'cluster' ? await cluster(dir, options) : await sentinel(dir, options)
  } catch (err) {
    // A topology that failed to start: its servers (their arguments name its directory) go now.
    for (const child of running) if (child.spawnargs.some((arg) => arg.startsWith(dir))) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    directories.delete(dir)
    throw err
  }
  const { nodes } = parts
  const pausedReplicas = new Set<Node>()
  const track = <C extends Redis | Cluster>(client: C): C => { clients.push(client); client.on('error', () => {}); return client }
  return {
    name,
    client: () => track(parts.client()),
    storeOptions: (extra = {}) => parts.storeOptions(extra),
    keys: async (pattern) => {
      const found: string[] = []
      for (const port of parts.primaries()) {
        const out = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--raw', 'keys', pattern], { encoding: 'utf8', timeout: 10_000 })
        found.push(...out.stdout.split('\n').filter((line) => line.length > 0))
      }
      return found.sort()
    },
    configSet: async (parameter, value) => {
      for (const node of nodes) {
        if (!node.alive) continue
        const out = cli(node.port, 'config', 'set', parameter, value)
        if (!out.includes('OK')) throw new Error(`CONFIG SET ${parameter} ${value} on ${node.port}: ${out}`)
      }
    },
    flush: async () => {
      for (const port of parts.primaries()) {
        const out = cli(port, 'flushall')
        if (!out.includes('OK')) throw new Error(`FLUSHALL on ${port}: ${out}`)
      }
    },
    commandCalls: async (command) => {
      let calls = 0
      for (const port of parts.primaries()) {
        const stats = cli(port, 'info', 'commandstats')
        const line = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats)
        if (line === null && !stats.includes('# Commandstats')) throw new Error(`INFO commandstats on ${port}: ${stats}`)
        calls += Number(line?.[1] ?? 0)
      }
      return calls
    },
    primaryPorts: () => parts.primaries(),
    commandStats: async () => {
      const calls = new Map<string, number>()
      for (const port of parts.primaries()) {
        const stats = cli(port, 'info', 'commandstats')
        if (!stats.includes('# Commandstats')) throw new Error(`INFO commandstats on ${port}: ${stats}`)
        for (const [, command, count] of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
          calls.set(command as string, (calls.get(command as string) ?? 0) + Number(count))
        }
      }
      return calls
    },
    down: async () => { for (const node of nodes) await node.kill() },
    up: async () => {
      for (const node of nodes) if (!node.alive) await node.start()
      await until(`${name} serving again`, parts.serving)
    },
    pause: () => { for (const node of nodes) node.signal('SIGSTOP') },
    resume: () => { for (const node of nodes) node.signal('SIGCONT') },
    pauseReplicas: async (pauseOptions = {}) => {
      const primaries = parts.primaries()
      for (const node of nodes) {
        if (!node.alive || !isReplica(node.port)) continue
        node.signal('SIGSTOP')
        pausedReplicas.add(node)
      }
      if (pauseOptions.disconnect !== true) return
      for (const port of primaries) cli(port, 'client', 'kill', 'type', 'replica')
      await until('no replica connected to a primary', () => primaries.every((port) => cli(port, 'info', 'replication').includes('connected_slaves:0')))
    },
    resumeReplicas: () => {
      for (const node of pausedReplicas) node.signal('SIGCONT')
      pausedReplicas.clear()
    },
    replicated: async () => {
      if (parts.hasReplicas) await until('every primary\'s writes acknowledged by a replica', () => parts.primaries().every(replicatedOn))
    },
    killPrimary: parts.killPrimary,
    primaryFor: parts.primaryFor,
    recovered: async () => { await until(`${name} serving after the primary died`, parts.serving) },
    stop: async () => {
      for (const client of clients) client.disconnect()
      for (const node of nodes) await node.kill()
      await parts.extraStop?.()
      rmSync(dir, { recursive: true, force: true })
      directories.delete(dir)
    }
  }
}

/**
 * Runs `body` once per topology (see TOPOLOGIES), each as a subtest named `[<topology>] <title>`
 * with its own freshly started topology, stopped afterwards. Without redis-server the subtests
 * are skipped with a notice, except under CI=true, where that fails the run.
 */
export function eachTopology (t: Test, title: string, body: (t: Test, topology: RedisTopology) => Promise<void>, options: TopologyOptions & { only?: readonly TopologyName[] } = {}): void {
  const skip = redisSkipReason()
  for (const name of TOPOLOGIES) {
    if (options.only !== undefined && !options.only.includes(name)) continue
    t.test(`[${name}] ${title}`, { skip }, async (t) => {
      const topology = await startTopology(name, options)
      t.teardown(async () => { await topology.stop() })
      await body(t, topology)
    })
  }
}
