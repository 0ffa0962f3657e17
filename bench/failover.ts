// Failover under load (issue 13). For each topology — Sentinel (a primary, a replica, three
// Sentinels) and a Redis Cluster with one replica per master — two app instances run as
// processes of their own (bench/failover-app.ts: Basic with its failure budgets, tokens with
// revocation and refresh, sessions, API keys; one RedisStore with waitForReplicas: 1). Valid and
// refused credentials are prepared (a revoked access token, a revoked refresh-token family, a
// logged-out session, a username whose failure budget is spent, a revoked API key); autocannon
// drives both instances, one run per credential kind; half a second before the kill one more
// token is revoked through B under load and sent from then on; then the primary (Sentinel) or
// the master holding the prepared credentials (Cluster) is SIGKILLed.
//
// Responses are counted per instance, credential kind and phase: "before" (answered before the
// kill), "during" (from the kill to the recovery), "after". An instance has recovered at the
// first 200 for a valid credential among the requests it was sent after the primary had died;
// recovery time = that answer − the kill. Pass: no 200 for a refused credential in any phase,
// no 5xx but 503, every valid credential answered 200 before the kill and again after it on
// both instances. Prints a table and `FAILOVER <json>`; exits 1 on a violation.
//
//   npx tsx bench/failover.ts                 20 s of load per topology, the kill at 6 s
//   FAILOVER_SECONDS=20                       length of the load per topology (a bound)
//   FAILOVER_KILL_AT=6                        seconds into the load when the primary is killed (later if a kind has no answer yet)
//   FAILOVER_AFTER=2                          stop this long after both instances recovered
//                                             every valid credential (default: run to the end)
//   FAILOVER_CONNECTIONS=1                    autocannon connections per credential kind and instance
//   FAILOVER_TOPOLOGIES=sentinel,cluster
//
// The prepared credentials' keys are on the master that is killed (on a Cluster, the others
// would not take part in the failover), and the preparation ends with a write and WAIT on that
// master, so the replica has everything before the load starts: the revocations are waited for
// by the store itself (waitForReplicas), but a failure counter or a new session is not, and
// would be lost if the primary died within the replication lag (docs/stores.md).
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import type { AutocannonInstance, AutocannonRequest } from 'autocannon'
import { generateApiKey } from '../src/index.js'
import { basicHeader } from '../test/helpers/app.js'
import { startTopology } from '../test/helpers/redis-topology.js'
import type { RedisTopology, TopologyName } from '../test/helpers/redis-topology.js'
import type { FailoverAppConfig } from './failover-app.js'

function numberFromEnv (name: string, fallback: number | undefined, min: number): number | undefined {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number ≥ ${min} (got "${raw}")`)
  return value
}

const SECONDS = numberFromEnv('FAILOVER_SECONDS', 20, 2) as number
const KILL_AT = numberFromEnv('FAILOVER_KILL_AT', 6, 1) as number
const AFTER = numberFromEnv('FAILOVER_AFTER', undefined, 0.5)
const CONNECTIONS = Math.floor(numberFromEnv('FAILOVER_CONNECTIONS', 1, 1) as number)
const TOPOLOGIES = (process.env.FAILOVER_TOPOLOGIES ?? 'sentinel,cluster').split(',').map((name) => name.trim()) as TopologyName[]
for (const name of TOPOLOGIES) if (name !== 'sentinel' && name !== 'cluster') throw new Error(`FAILOVER_TOPOLOGIES: sentinel or cluster (got "${name}")`)
if (KILL_AT >= SECONDS) throw new Error('FAILOVER_KILL_AT must be less than FAILOVER_SECONDS')

const PASSWORD = 'failover-password'
const PREFIX = 'multiauth:' // the RedisStore default
/** The user the tokens belong to; its keys (hash tag `{u:u0}`) decide which master dies. */
const TOKEN_USER = 'u0'
const ANCHOR = `${PREFIX}tok:{u:${TOKEN_USER}}:nb`
const PHASES = ['before', 'during', 'after'] as const
type Phase = typeof PHASES[number]

interface Credentials {
  token: string
  revokedToken: string
  /** Valid until it is revoked through B during the load, half a second before the kill. */
  lateRevokedToken: string
  revokedRefresh: string
  session: string
  loggedOutSession: string
  basicUser: string
  spentUser: string
  key: string
  revokedKey: string
}

/**
 * A credential kind the load sends; a refused one has the status it must get (or 503, never 200).
 * A `late` one is sent from its revocation during the load on.
 */
interface Kind { name: string, refused?: number, late?: true, request: (c: Credentials) => AutocannonRequest }
const json = { 'content-type': 'application/json' }
const KINDS: Kind[] = [
  { name: 'token', request: (c) => ({ path: '/token', headers: { authorization: `Bearer ${c.token}` } }) },
  { name: 'token revoked', refused: 401, request: (c) => ({ path: '/token', headers: { authorization: `Bearer ${c.revokedToken}` } }) },
  { name: 'token revoked under load', refused: 401, late: true, request: (c) => ({ path: '/token', headers: { authorization: `Bearer ${c.lateRevokedToken}` } }) },
  { name: 'refresh, family revoked', refused: 400, request: (c) => ({ method: 'POST', path: '/tokens/refresh', headers: json, body: JSON.stringify({ refresh_token: c.revokedRefresh }) }) },
  { name: 'session', request: (c) => ({ path: '/session', headers: { cookie: c.session } }) },
  { name: 'session logged out', refused: 401, request: (c) => ({ path: '/session', headers: { cookie: c.loggedOutSession } }) },
  { name: 'basic', request: (c) => ({ path: '/basic', headers: { authorization: basicHeader(c.basicUser, PASSWORD) } }) },
  { name: 'basic, budget spent', refused: 429, request: (c) => ({ path: '/basic', headers: { authorization: basicHeader(c.spentUser, PASSWORD) } }) },
  { name: 'api key', request: (c) => ({ path: '/key', headers: { 'x-api-key': c.key } }) },
  { name: 'api key revoked', refused: 401, request: (c) => ({ path: '/key', headers: { 'x-api-key': c.revokedKey } }) }
]

// --- the app instances ---

interface Instance { name: string, port: number, child: ChildProcess, stderr: () => string }

async function startInstance (name: string, config: FailoverAppConfig): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/failover-app.ts'], {
    cwd: new URL('..', import.meta.url).pathname,
    env: { ...process.env, FAILOVER_APP: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-16_384) })
  let stdout = ''
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`app ${name} did not listen within 60 s\n${stderr}`)), 60_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`app ${name} exited with ${String(code)}\n${stderr}`)) })
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const listening = /^listening (\d+)$/m.exec(stdout)
      if (listening !== null) { clearTimeout(timer); resolve(Number(listening[1])) }
    })
  })
  return { name, port, child, stderr: () => stderr }
}

const children = new Set<ChildProcess>()
async function stopInstance (instance: Instance): Promise<void> {
  const { child } = instance
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

// --- preparing the credentials ---

interface Answer { status: number, body: string, cookie: string | undefined }

async function call (instance: Instance, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<Answer> {
  const res = await fetch(`http://127.0.0.1:${instance.port}${path}`, {
    method,
    headers: body === undefined ? headers : { ...headers, ...json },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000)
  })
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0] as string).find((c) => !c.endsWith('='))
  return { status: res.status, body: await res.text(), cookie }
}

async function expect (answer: Promise<Answer>, status: number, what: string): Promise<Answer> {
  const got = await answer
  if (got.status !== status) throw new Error(`preparation: ${what} answered ${got.status} (expected ${status}): ${got.body}`)
  return got
}

/**
 * Runs `make` until the keys it creates (matching `pattern`) are all on the `target` primary,
 * at most 40 times (a Cluster puts a key on a given one of its three masters with odds 1/3).
 */
async function onTarget<T> (topology: RedisTopology, target: number, pattern: string, what: string, make: () => Promise<T>): Promise<T> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const before = new Set(await topology.keys(pattern))
    const made = await make()
    const created = (await topology.keys(pattern)).filter((key) => !before.has(key))
    if (created.length === 0) throw new Error(`preparation: ${what} wrote no key matching ${pattern}`)
    if (created.every((key) => topology.primaryFor(key) === target)) return made
  }
  throw new Error(`preparation: ${what}: no attempt put its keys on the primary on port ${target}`)
}

async function prepare (topology: RedisTopology, target: number, a: Instance, b: Instance, keys: { valid: string[], revoked: string }): Promise<Credentials> {
  const login = async (user: string): Promise<{ token: string, refresh_token: string }> =>
    JSON.parse((await expect(call(a, 'POST', '/tokens', { authorization: basicHeader(user, PASSWORD) }), 200, `token login of ${user}`)).body)

  // Tokens: the user's keys are on the target by the choice of the target. One token revoked through B.
  const token = (await login(TOKEN_USER)).token
  const revokedToken = (await login(TOKEN_USER)).token
  await expect(call(b, 'POST', '/tokens/revoke', { authorization: `Bearer ${revokedToken}` }), 200, 'revoking a token on B')
  const lateRevokedToken = (await login(TOKEN_USER)).token

  // A refresh-token family (its record on the target) rotated on A, its spent token replayed on
  // B: the family is revoked. The current token of that family is the one a lost revocation would let through.
  const first = await onTarget(topology, target, `${PREFIX}tok:rf:*`, 'a refresh-token family', async () => (await login(TOKEN_USER)).refresh_token)
  const revokedRefresh = (JSON.parse((await expect(call(a, 'POST', '/tokens/refresh', {}, { refresh_token: first }), 200, 'rotating a refresh token on A')).body) as { refresh_token: string }).refresh_token
  await expect(call(b, 'POST', '/tokens/refresh', {}, { refresh_token: first }), 400, 'replaying a spent refresh token on B')

  // Sessions: one live, one logged out on B (its tombstone stays at the session's key).
  const session = async (): Promise<string> => (await expect(call(a, 'POST', '/login', {}, { id: TOKEN_USER }), 200, 'session login on A')).cookie as string
  const validSession = await onTarget(topology, target, `${PREFIX}sess:*`, 'a session', session)
  const loggedOutSession = await onTarget(topology, target, `${PREFIX}sess:*`, 'a session', session)
  await expect(call(b, 'POST', '/logout', { cookie: loggedOutSession }), 200, 'logout on B')

  // Basic: a user that logs in (a success takes and gives back a slot of its budget), and one whose
  // budget is spent: ten wrong passwords, on both instances (the budget is shared). A counter
  // with nothing counted and nothing in flight is deleted, so the user that logs in has one
  // refusal counted: its counter stays, and where it lives is known.
  let n = 100
  const basicUser = await onTarget(topology, target, `${PREFIX}rl:fail:user:*`, 'a Basic login after one wrong password', async () => {
    const user = `u${n++}`
    await expect(call(a, 'GET', '/basic', { authorization: basicHeader(user, 'wrong') }), 401, `Basic ${user}, wrong password`)
    await expect(call(b, 'GET', '/basic', { authorization: basicHeader(user, PASSWORD) }), 200, `Basic ${user}`)
    return user
  })
  const spentUser = await onTarget(topology, target, `${PREFIX}rl:fail:user:*`, 'a refused Basic password', async () => {
    const user = `u${n++}`
    await expect(call(a, 'GET', '/basic', { authorization: basicHeader(user, 'wrong') }), 401, `Basic ${user}, wrong password`)
    return user
  })
  for (let i = 1; i < 10; i++) await expect(call(i % 2 === 0 ? a : b, 'GET', '/basic', { authorization: basicHeader(spentUser, 'wrong') }), 401, `Basic ${spentUser}, wrong password`)

  // API keys: the first of the records whose quota counter lands on the target.
  const candidates = [...keys.valid]
  const key = await onTarget(topology, target, `${PREFIX}rl:*`, 'an API key\'s quota', async () => {
    const candidate = candidates.shift()
    if (candidate === undefined) throw new Error('preparation: no API key record left')
    await expect(call(a, 'GET', '/key', { 'x-api-key': candidate }), 200, 'an API key')
    return candidate
  })

  // Everything written so far reaches the replica before the load starts (see the top of this file).
  const waited = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(target)], { input: `SET failover-bench:{u:${TOKEN_USER}} 1 PX 60000\nWAIT 1 5000\n`, encoding: 'utf8', timeout: 10_000 })
  if (waited.stdout.trim().split('\n').at(-1) !== '1') throw new Error(`preparation: the replica did not acknowledge: ${waited.stdout}${waited.stderr}`)
  return { token, revokedToken, lateRevokedToken, revokedRefresh, session: validSession, loggedOutSession, basicUser, spentUser, key, revokedKey: keys.revoked }
}

// --- the load and its phases ---

interface Hit { kind: number, status: number, sent: number, answered: number }

/** One autocannon run per credential kind (its own connections), so that every kind is answered in every phase. */
function drive (instance: Instance, credentials: Credentials, late: boolean, seconds: number, hits: Hit[], clock: () => number): AutocannonInstance[] {
  return KINDS.flatMap((k, kind) => {
    if ((k.late === true) !== late) return []
    const run = autocannon({ url: `http://127.0.0.1:${instance.port}`, connections: CONNECTIONS, duration: seconds, timeout: 10, requests: [k.request(credentials)] })
    run.on('response', (_client: unknown, status: number, _bytes: number, latency: number) => {
      const now = clock()
      hits.push({ kind, status, sent: now - latency, answered: now })
    })
    run.on('reqError', () => { const now = clock(); hits.push({ kind, status: 0, sent: now, answered: now }) })
    return run
  })
}

interface InstanceFigures {
  instance: string
  /** ms from the kill to the first 200 for a valid credential sent after it; null: never. */
  recoveryMs: number | null
  /** Per kind: statuses per phase, and (valid kinds) ms from the kill to its first 200 sent after it. */
  kinds: Record<string, { refused?: number, phases: Record<Phase, Record<string, number>>, recoveryMs?: number | null }>
  /** Requests that got no HTTP answer (connection error or timeout), per phase. */
  transportErrors: Record<Phase, number>
  /** The longest time a request waited for its answer, per phase. */
  slowestMs: Record<Phase, number>
}

function analyse (instance: Instance, hits: Hit[], killAt: number, killedAt: number, violations: string[]): InstanceFigures {
  const firstOk = (kind?: number): number | undefined => {
    let first: number | undefined
    for (const h of hits) {
      if (h.status !== 200 || h.sent < killedAt || KINDS[h.kind]?.refused !== undefined || (kind !== undefined && h.kind !== kind)) continue
      if (first === undefined || h.answered < first) first = h.answered
    }
    return first
  }
  const recovered = firstOk()
  const phaseOf = (h: Hit): Phase => h.answered < killAt ? 'before' : recovered === undefined || h.answered < recovered ? 'during' : 'after'
  const figures: InstanceFigures = { instance: instance.name, recoveryMs: recovered === undefined ? null : Math.round(recovered - killedAt), kinds: {}, transportErrors: { before: 0, during: 0, after: 0 }, slowestMs: { before: 0, during: 0, after: 0 } }
  KINDS.forEach((kind, i) => {
    const phases = { before: {}, during: {}, after: {} } as Record<Phase, Record<string, number>>
    for (const h of hits) {
      if (h.kind !== i || h.status === 0) continue
      const counts = phases[phaseOf(h)]
      counts[h.status] = (counts[h.status] ?? 0) + 1
    }
    const entry: InstanceFigures['kinds'][string] = { phases }
    if (kind.refused !== undefined) {
      entry.refused = kind.refused
      for (const phase of PHASES) {
        if ((phases[phase][200] ?? 0) > 0) violations.push(`${instance.name}: ${phases[phase][200]} × 200 for "${kind.name}" ${phase} the failover`)
        if (Object.keys(phases[phase]).length === 0) violations.push(`${instance.name}: no answer for "${kind.name}" ${phase} the failover (run too short?)`)
      }
    } else {
      const first = firstOk(i)
      entry.recoveryMs = first === undefined ? null : Math.round(first - killedAt)
      if ((phases.before[200] ?? 0) === 0) violations.push(`${instance.name}: "${kind.name}" never answered 200 before the kill`)
      if (first === undefined) violations.push(`${instance.name}: "${kind.name}" never answered 200 after the kill (no recovery)`)
    }
    for (const phase of PHASES) {
      for (const status of Object.keys(phases[phase]).map(Number)) {
        if (status >= 500 && status !== 503) violations.push(`${instance.name}: ${phases[phase][status]} × ${status} for "${kind.name}" ${phase} the failover`)
      }
    }
    figures.kinds[kind.name] = entry
  })
  for (const h of hits) {
    const phase = phaseOf(h)
    if (h.status === 0) figures.transportErrors[phase]++
    else figures.slowestMs[phase] = Math.max(figures.slowestMs[phase], Math.round(h.answered - h.sent))
  }
  if (recovered === undefined) violations.push(`${instance.name}: no 200 for a valid credential after the kill`)
  return figures
}

interface TopologyFigures {
  topology: TopologyName
  loadSeconds: number
  killAtSeconds: number
  instances: InstanceFigures[]
  violations: string[]
}

async function runTopology (name: TopologyName): Promise<TopologyFigures> {
  const topology = await startTopology(name, { replicas: true })
  const cleanup = async (): Promise<void> => { await topology.stop() }
  cleanups.add(cleanup)
  const instances: Instance[] = []
  try {
    const target = topology.primaryFor(ANCHOR)
    const valid = Array.from({ length: 24 }, () => generateApiKey({ prefix: 'ak', environment: 'live' }))
    const revoked = generateApiKey({ prefix: 'ak', environment: 'live' })
    const config: FailoverAppConfig = {
      store: topology.storeOptions(),
      password: PASSWORD,
      keys: [...valid.map(({ id, hash }) => ({ id, hash })), { id: revoked.id, hash: revoked.hash, revoked: true }]
    }
    instances.push(...await Promise.all([startInstance('A', config), startInstance('B', config)]))
    const [a, b] = instances as [Instance, Instance]
    const credentials = await prepare(topology, target, a, b, { valid: valid.map((k) => k.key), revoked: revoked.key })
    // Every credential as expected on both instances before the load.
    for (const instance of instances) {
      for (const kind of KINDS) {
        const request = kind.request(credentials)
        await expect(call(instance, request.method ?? 'GET', request.path as string, request.headers, request.body === undefined ? undefined : JSON.parse(request.body)), kind.late === true ? 200 : kind.refused ?? 200, `"${kind.name}" on ${instance.name} before the load`)
      }
    }

    const start = performance.now()
    const clock = (): number => performance.now() - start
    const hits = instances.map((): Hit[] => [])
    const runs = instances.flatMap((instance, i) => drive(instance, credentials, false, SECONDS, hits[i] as Hit[], clock))
    // Half a second before the kill, a token is revoked through B under load (acknowledged by the
    // replica: waitForReplicas), and from then on sent to both instances too.
    await sleep(KILL_AT * 1000 - 500)
    await expect(call(b, 'POST', '/tokens/revoke', { authorization: `Bearer ${credentials.lateRevokedToken}` }), 200, 'revoking a token on B under load')
    runs.push(...instances.flatMap((instance, i) => drive(instance, credentials, true, SECONDS - clock() / 1000, hits[i] as Hit[], clock)))
    const finished = Promise.all(runs.map(async (run) => await run))
    await sleep(Math.max(0, KILL_AT * 1000 - clock()))
    // On a loaded machine a kind may not have its first answer yet (the revocation under load is
    // waited for by a replica): the kill waits until each kind was answered on both instances, a
    // valid one with a 200, so no "before" phase is empty because the machine was slow (bounded).
    const answered = (): boolean => hits.every((list) => KINDS.every((kind, i) => list.some((h) => h.kind === i && (kind.refused === undefined ? h.status === 200 : h.status !== 0))))
    const readyBy = clock() + (SECONDS - KILL_AT) * 500
    while (!answered() && clock() < readyBy) await sleep(50)
    const killAt = clock()
    await topology.killPrimary(ANCHOR)
    const killedAt = clock()
    if (AFTER !== undefined) {
      // Stop early once every valid credential has had a 200 on both instances after the kill, plus AFTER s.
      let done = false
      void finished.then(() => { done = true })
      const validKinds = KINDS.map((k, i) => k.refused === undefined ? i : -1).filter((i) => i >= 0)
      const recovered = (): boolean => hits.every((list) => validKinds.every((i) => list.some((h) => h.kind === i && h.status === 200 && h.sent >= killedAt)))
      while (!done && !recovered()) await sleep(100)
      if (!done) {
        await sleep(AFTER * 1000)
        for (const run of runs) run.stop()
      }
    }
    await finished
    const loadSeconds = clock() / 1000
    const violations: string[] = []
    const figures = instances.map((instance, i) => analyse(instance, hits[i] as Hit[], killAt, killedAt, violations))
    if (violations.length > 0) {
      for (const instance of instances) console.error(`--- last stderr of app ${instance.name} ---\n${instance.stderr().slice(-4000)}`)
    }
    return { topology: name, loadSeconds: Number(loadSeconds.toFixed(1)), killAtSeconds: Number((killAt / 1000).toFixed(2)), instances: figures, violations }
  } finally {
    for (const instance of instances) await stopInstance(instance)
    cleanups.delete(cleanup)
    await topology.stop()
  }
}

function printTable (figures: TopologyFigures): void {
  const show = (counts: Record<string, number>): string => Object.entries(counts).map(([status, count]) => `${status}×${count}`).join(' ') || '-'
  console.log(`\n${figures.topology}: ${figures.loadSeconds} s of load, primary killed at ${figures.killAtSeconds} s`)
  const rows: Record<string, Record<string, string>> = {}
  for (const instance of figures.instances) {
    for (const [name, kind] of Object.entries(instance.kinds)) {
      rows[`${instance.instance} ${name}`] = {
        expected: kind.refused === undefined ? '200' : `${kind.refused} (never 200)`,
        before: show(kind.phases.before),
        during: show(kind.phases.during),
        after: show(kind.phases.after),
        'first 200 after kill': kind.refused !== undefined ? '' : kind.recoveryMs === null ? 'never' : `${kind.recoveryMs} ms`
      }
    }
    rows[`${instance.instance} (no answer)`] = { expected: '0', before: String(instance.transportErrors.before), during: String(instance.transportErrors.during), after: String(instance.transportErrors.after), 'first 200 after kill': '' }
  }
  console.table(rows)
  for (const instance of figures.instances) {
    const slowest = PHASES.map((phase) => `${phase} ${instance.slowestMs[phase]} ms`).join(', ')
    console.log(`instance ${instance.instance}: recovery ${instance.recoveryMs === null ? 'never' : `${instance.recoveryMs} ms`} (kill → first 200 for a valid credential); slowest answer: ${slowest}`)
  }
  for (const violation of figures.violations) console.log(`VIOLATION ${figures.topology}: ${violation}`)
}

const cleanups = new Set<() => Promise<void>>()
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGKILL')
    void Promise.allSettled([...cleanups].map(async (cleanup) => { await cleanup() })).then(() => process.exit(1))
  })
}

const results: TopologyFigures[] = []
let failure: unknown
for (const name of TOPOLOGIES) {
  try {
    const figures = await runTopology(name)
    results.push(figures)
    printTable(figures)
  } catch (err) {
    failure = err
    console.error(`failover ${name}: ${err instanceof Error ? err.stack : String(err)}`)
    break
  }
}
const pass = failure === undefined && results.every((r) => r.violations.length === 0)
console.log('FAILOVER ' + JSON.stringify({ connectionsPerKind: CONNECTIONS, topologies: results, error: failure === undefined ? undefined : String(failure), pass }))
console.log(pass ? 'failover: PASS' : 'failover: FAIL')
process.exitCode = pass ? 0 : 1
