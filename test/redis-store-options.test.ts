// RedisStore's options, checked at construction with a MultiauthOptionError naming the option:
// exactly one of client / connection / cluster, cluster.nodes, waitForReplicas. No server is
// needed: every client here is lazy (lazyConnect), or the construction throws before one exists.
import t from 'tap'
import type { Test } from 'tap'
import { createServer } from 'node:net'
import type { Socket } from 'node:net'
import { once } from 'node:events'
import { Cluster, Redis } from 'ioredis'
import { RedisStore } from '../src/index.js'
import type { RedisStoreOptions } from '../src/index.js'
import { retryUntil } from './helpers/phased-load.js'

const CODE = 'FST_MULTIAUTH_INVALID_OPTION'
const lazy = { lazyConnect: true } as const
const NODES = [{ host: '127.0.0.1', port: 7000 }]

/** Constructs a store from `options`, which must be refused; a store that is accepted after all is closed (no client left connecting). */
function refused (t: Test, options: unknown, message: RegExp, what: string): void {
  let error: unknown
  try {
    void new RedisStore(options as RedisStoreOptions).close()
  } catch (err) {
    error = err
  }
  t.match(error, { code: CODE, message }, what)
}

t.test('exactly one of client, connection and cluster', async (t) => {
  const client = new Redis(lazy)
  t.teardown(() => { client.disconnect() })
  refused(t, {}, /RedisStore needs a client, connection options or cluster nodes/, 'none of them')
  refused(t, { prefix: 'x:' }, /RedisStore needs a client, connection options or cluster nodes/, 'none of them, other options given')
  refused(t, { client, connection: lazy }, /RedisStore takes one of client, connection and cluster \(got client and connection\)/, 'client and connection')
  refused(t, { client, cluster: { nodes: NODES } }, /\(got client and cluster\)/, 'client and cluster')
  refused(t, { connection: lazy, cluster: { nodes: NODES } }, /\(got connection and cluster\)/, 'connection and cluster')
  refused(t, { client, connection: lazy, cluster: { nodes: NODES } }, /\(got client and connection and cluster\)/, 'all three')

  const given = new RedisStore({ client })
  t.equal(given.client, client, 'client: the store uses that client')
  const owned = new RedisStore({ connection: lazy })
  t.ok(owned.client instanceof Redis, 'connection: a Redis client of its own')
  await owned.close()
  const url = new RedisStore({ connection: 'redis://127.0.0.1:1/0', commandTimeout: 10 })
  t.ok(url.client instanceof Redis, 'connection: a redis:// URL')
  await url.close()
})

t.test('cluster: seed nodes, a non-empty array', async (t) => {
  for (const [nodes, what] of [[[], 'an empty array'], [undefined, 'missing'], [NODES[0], 'one node, not in an array'], ['127.0.0.1:7000', 'a string'], [null, 'null']] as const) {
    refused(t, { cluster: { nodes, options: lazy } }, /RedisStore cluster\.nodes must be a non-empty array of seed nodes/, `cluster.nodes ${what}`)
  }
  refused(t, { cluster: 'redis://127.0.0.1:7000' }, /RedisStore cluster must be \{ nodes, options\? \}/, 'cluster given a URL')
  const store = new RedisStore({ cluster: { nodes: NODES, options: lazy } })
  t.ok(store.client instanceof Cluster, 'cluster: a Cluster client of its own')
  t.equal((store.client as Cluster).options.redisOptions?.maxRetriesPerRequest, 1, 'whose node connections fail fast (maxRetriesPerRequest: 1)')
  await store.close()
  t.equal(store.client.status, 'end', 'and which close() ends')

  const yours = new Cluster(NODES, lazy)
  t.teardown(() => { yours.disconnect() })
  const given = new RedisStore({ client: yours })
  t.equal(given.client, yours, 'client: a Cluster of yours is accepted')
  await given.close()
  t.equal(yours.status, 'wait', 'and never closed by the store')
})

t.test('replica reads are refused, for a client of yours and for one the store would own', async (t) => {
  const replicaReads = new Cluster(NODES, { ...lazy, scaleReads: 'slave' })
  t.teardown(() => { replicaReads.disconnect() })
  refused(t, { client: replicaReads }, /the Cluster client reads from replicas \(scaleReads: "slave"\).*Use scaleReads: 'master'/, 'a Cluster of yours with scaleReads: slave')
  const replica = new Redis({ ...lazy, role: 'slave' } as never)
  t.teardown(() => { replica.disconnect() })
  refused(t, { client: replica }, /the client reads from a replica/, 'a Redis of yours with role: slave')
  refused(t, { connection: { ...lazy, readOnly: true } }, /the client reads from a replica/, 'connection with readOnly')
  refused(t, { cluster: { nodes: NODES, options: { ...lazy, scaleReads: 'all' } } }, /scaleReads: "all"/, 'cluster options with scaleReads: all')
})

t.test('waitForReplicas: { replicas, timeout? }', async (t) => {
  const store = (waitForReplicas: unknown): RedisStore => new RedisStore({ connection: lazy, waitForReplicas } as RedisStoreOptions)
  t.equal(store(undefined).waitForReplicas, undefined, 'off by default')
  t.same(store({ replicas: 1 }).waitForReplicas, { replicas: 1, timeout: 1000 }, 'timeout: one second by default')
  t.same(store({ replicas: 2, timeout: '500ms' }).waitForReplicas, { replicas: 2, timeout: 500 }, 'a duration string')
  t.same(store({ replicas: 1, timeout: 1 }).waitForReplicas, { replicas: 1, timeout: 1 }, 'timeout: 1 ms, the least')

  for (const value of [null, true, 1, 'replicas']) {
    refused(t, { connection: lazy, waitForReplicas: value }, /RedisStore waitForReplicas must be an object \{ replicas, timeout\? \}/, `waitForReplicas: ${JSON.stringify(value)}`)
  }
  refused(t, { connection: lazy, waitForReplicas: { replicas: 1, timout: 500 } }, /unknown option RedisStore waitForReplicas\.timout \(allowed: replicas, timeout\)/, 'an unknown key (a typo) is named')
  refused(t, { connection: lazy, waitForReplicas: { replica: 1 } }, /unknown option RedisStore waitForReplicas\.replica /, 'replica for replicas')
  for (const replicas of [0, -1, 1.5, '1', NaN, Infinity, undefined, null]) {
    refused(t, { connection: lazy, waitForReplicas: { replicas } }, /RedisStore waitForReplicas\.replicas must be a positive integer/, `replicas: ${String(replicas)}${typeof replicas === 'string' ? ' (a string)' : ''}`)
  }
  // WAIT 0 would wait forever.
  refused(t, { connection: lazy, waitForReplicas: { replicas: 1, timeout: 0 } }, /RedisStore waitForReplicas\.timeout must be at least 1 ms \(got 0\)/, 'timeout: 0')
  refused(t, { connection: lazy, waitForReplicas: { replicas: 1, timeout: '0s' } }, /RedisStore waitForReplicas\.timeout must be at least 1 ms/, 'timeout: \'0s\'')
  refused(t, { connection: lazy, waitForReplicas: { replicas: 1, timeout: -5 } }, /RedisStore waitForReplicas\.timeout must be at least 1 ms/, 'a negative timeout')
  refused(t, { connection: lazy, waitForReplicas: { replicas: 1, timeout: 'soon' } }, /RedisStore waitForReplicas\.timeout must be a number of milliseconds or a duration such as '15m' or '2 hours' \(got "soon"\)/, 'timeout: \'soon\'')
  refused(t, { connection: lazy, waitForReplicas: { replicas: 1, timeout: NaN } }, /RedisStore waitForReplicas\.timeout must be a number of milliseconds/, 'timeout: NaN')
})

// Found while writing this file: loose values where a client or options belong reached ioredis or
// a destructuring instead of the option check (they failed before the fix).
t.test('loose values for client, connection and cluster are option errors', async (t) => {
  refused(t, { client: null }, /RedisStore client/, 'client: null')
  refused(t, { client: {} }, /RedisStore client/, 'client: a plain object')
  refused(t, { client: 'redis://127.0.0.1:6379' }, /RedisStore client/, 'client: a URL (connection was meant)')
  refused(t, { cluster: null }, /RedisStore cluster/, 'cluster: null')
  // Accepted before: ioredis then connected to localhost:6379, whatever was there.
  refused(t, { connection: null }, /RedisStore connection/, 'connection: null')
})

t.test('a refused option leaves no client connecting', async (t) => {
  // A TCP listener stands in for Redis: it only counts connections. A control client made after
  // the refused construction connects after any client that construction may have started (both
  // connect on the next tick, in order; loopback accepts in order), so once the control's
  // connection has arrived, any other one is already there: no waiting for a time window.
  const sockets: Socket[] = []
  const server = createServer((socket) => { sockets.push(socket) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  // No reconnection: a client left behind ends when its socket is destroyed (the process can exit).
  const connection = { host: '127.0.0.1', port, retryStrategy: () => null, enableReadyCheck: false }
  const strays = async (options: unknown): Promise<number> => {
    const before = sockets.length
    try { void new RedisStore(options as RedisStoreOptions).close() } catch {}
    const control = new Redis({ ...connection })
    control.on('error', () => {})
    await once(control, 'connect')
    const controlPort = (control as unknown as { stream: Socket }).stream.localPort
    await retryUntil('the control connection accepted', async () => sockets.some((s) => s.remotePort === controlPort), 10_000, 5)
    control.disconnect()
    return sockets.slice(before).filter((s) => s.remotePort !== controlPort).length
  }
  t.equal(await strays({ connection, waitForReplicas: { replicas: 0 } }), 0, 'a bad waitForReplicas is refused before any client exists')
  t.equal(await strays({ connection, prefix: 1 }), 0, 'a bad prefix too')
  t.equal(await strays({ connection: { ...connection, role: 'slave' } }), 0, 'connection options that read from a replica are refused before the client connects')
})
