// The choreography and the assertions the Redis fault tests share (test/security/redis-fault*.test.ts):
// load → revoke one credential → kill every Redis data node → restart them → recover, each step
// taken after the real event, each wait bounded. Assertions are per phase, never per time window.
import type { Test } from 'tap'
import type { Hit, PhasedLoad } from './phased-load.js'
import { retryUntil } from './phased-load.js'

/** What the fault run does to Redis: a RedisTopology (test/helpers/redis-topology.ts) is one. */
export interface RedisOutage {
  /** Kills every data node; resolves once they are dead (their ports refuse connections). */
  down: () => Promise<void>
  /** Starts them again on the same ports; resolves once the topology serves again. */
  up: () => Promise<void>
}

/**
 * up: Redis running. revoked: the revoke call has resolved. killing: the kill has begun (nodes
 * die one after another, and a client may see a socket close before the process's exit is
 * reported: "up" ends here, not when the kill resolves). down: every data node is dead and
 * its port closed. restarting: up() called. restarted: the topology serves again. recovered: a
 * probe of every valid credential, sent after the restart, answered 200.
 */
export const FAULT_PHASES = ['up', 'revoked', 'killing', 'down', 'restarting', 'restarted', 'recovered'] as const
export type FaultPhase = typeof FAULT_PHASES[number]

/** Answers per target collected while Redis is up, before and after the revocation. */
const UP_ANSWERS = 20
/** Answers per target sent and answered while Redis is down (each waits at most commandTimeout). */
const DOWN_ANSWERS = 5
/** Requests per target sent after recovery: all must get the up-and-running answer. */
const RECOVERED_ANSWERS = 200
/** Deadline of every wait: far above what each step takes (a restart, a reconnect backoff of at most 2 s). */
const DEADLINE_MS = 60_000

export interface FaultRunOptions {
  redis: RedisOutage
  /** Targets whose credential is valid: 200 whenever Redis is up. */
  valid: string[]
  /** Targets whose credential is revoked, destroyed or expired: never 200; 401 whenever Redis is up. */
  refused: string[]
  /** A target valid at the start, revoked by `revoke()` during the load. */
  revokedDuringRun: string
  revoke: () => Promise<void>
}

const statusCounts = (hits: Hit[]): string => JSON.stringify(hits.reduce<Record<number, number>>((acc, h) => { acc[h.status] = (acc[h.status] ?? 0) + 1; return acc }, {}))
const unexpected = (hits: Hit[], ok: number[]): Hit[] => hits.filter((h) => !ok.includes(h.status))

export async function faultRun (t: Test, load: PhasedLoad<FaultPhase>, options: FaultRunOptions): Promise<void> {
  const { redis, valid, refused, revokedDuringRun } = options
  const targets = [...valid, ...refused, revokedDuringRun]
  const at = (phase: FaultPhase): number => load.at(phase)
  const within = (hits: Hit[], from: FaultPhase, to: FaultPhase): Hit[] => hits.filter((h) => h.sent >= at(from) && h.answered <= at(to))
  const answeredIn = (phase: FaultPhase, n: number): () => boolean =>
    () => targets.every((target) => load.select({ target, sentIn: phase, answeredIn: phase }).length >= n)

  load.start()
  await load.until(`${UP_ANSWERS} answers per target with Redis up`, answeredIn('up', UP_ANSWERS), DEADLINE_MS)
  await options.revoke()
  load.enter('revoked')
  await load.until(`${UP_ANSWERS} answers per target after the revocation`, answeredIn('revoked', UP_ANSWERS), DEADLINE_MS)
  load.enter('killing')
  await redis.down() // resolves once the processes have exited (a dead process's port refuses connections)
  load.enter('down')
  await load.until(`${DOWN_ANSWERS} answers per target with Redis down`, answeredIn('down', DOWN_ANSWERS), DEADLINE_MS)
  load.enter('restarting')
  await redis.up() // resolves once the restarted topology serves (a Cluster: cluster_state:ok)
  load.enter('restarted')
  const probes = await retryUntil('a 200 for every valid credential after the restart', async () => {
    for (const target of valid) if ((await load.request(target)).status !== 200) return false
    return true
  }, DEADLINE_MS)
  load.enter('recovered')
  await load.until(`${RECOVERED_ANSWERS} answers per target after recovery`, answeredIn('recovered', RECOVERED_ANSWERS), DEADLINE_MS)
  await load.stop()

  for (const target of targets) t.comment(`${target}: ${statusCounts(load.select({ target }))}`)
  t.comment(`recovered after ${probes} probe round(s); per phase (sent→answered): ${load.summary()}`)

  const all = load.hits
  /** Passes when `hits` is empty; else shows how many and the first few. */
  const none = (hits: Hit[], message: string): void => { t.equal(hits.length, 0, message, { examples: hits.slice(0, 5) }) }
  none(all.filter((h) => h.status === 0), 'every request was answered (no timeout, no connection error)')
  none(unexpected(all, [200, 401, 503]), 'only 200, 401 and 503: no 500, no other 5xx')

  // Redis up, before the outage: answered before the kill began (a request answered while the
  // nodes are being killed may meet a dead one: 503 is right there). A store command takes well
  // under a millisecond here; only an event-loop stall longer than commandTimeout (1000 ms, the
  // default) could turn one into a 503.
  for (const target of valid) none(unexpected(within(load.select({ target }), 'up', 'revoked'), [200]), `${target}: 200 while Redis is up`)
  for (const target of refused) none(unexpected(within(load.select({ target }), 'up', 'revoked'), [401]), `${target}: 401 while Redis is up`)
  none(unexpected(load.select({ target: revokedDuringRun, sentIn: 'up', answeredIn: 'up' }), [200]), `${revokedDuringRun}: 200 before the revocation`)

  // Revoked, destroyed, expired: never a 200, whatever the phase (a request straddling the
  // outage may get 503). The credential revoked during the run: from the moment the revoke
  // call resolved, through the outage and after it.
  for (const target of refused) none(unexpected(load.select({ target }), [401, 503]), `${target}: never a 200 (only 401 or 503, in any phase)`)
  none(unexpected(load.select({ target: revokedDuringRun, sentFrom: 'revoked' }), [401, 503]),
    `${revokedDuringRun}: no 200 for any request sent after the revocation resolved (only 401 or 503)`)
  for (const target of valid) none(unexpected(load.select({ target }), [200, 503]), `${target}: only 200 or 503 in any phase`)

  // Sent after the kill completed, answered before the restart began: Redis was down all along.
  const down = all.filter((h) => h.sent === at('down') && h.answered === at('down'))
  t.ok(down.length >= DOWN_ANSWERS * targets.length, `requests were answered while Redis was down (${down.length})`)
  none(unexpected(down, [503]), 'only 503 while Redis is down (fail closed)')

  // Recovered without restarting the process: a fixed number of requests, all with Redis' answer.
  for (const target of valid) {
    const after = load.select({ target, sentIn: 'recovered' })
    t.ok(after.length >= RECOVERED_ANSWERS, `${target}: ${after.length} requests after recovery`)
    none(unexpected(after, [200]), `${target}: all 200 after recovery, same process`)
  }
  for (const target of [...refused, revokedDuringRun]) {
    none(unexpected(load.select({ target, sentIn: 'recovered' }), [401]), `${target}: all 401 after recovery (the refusal survived the restart)`)
  }
}
