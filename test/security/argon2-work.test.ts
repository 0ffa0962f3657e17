// The argon2 work a Basic login costs (issue 12, items 7 and 10): an unknown user costs what
// the costliest parameter set in use costs, and so does a wrong password for a hash with
// cheaper parameters; parameters from a record are bounded (fail closed); at most
// `maxConcurrentVerifications` computations run at once, the rest wait at most `callbackTimeout`.
// Work is counted through an internal probe (every argon2 computation Basic makes, with its
// parameters), not timed; one wall-clock check backs it with a wide margin.
// Each test says whether (and how) it failed on the code before its fix.
import t from 'tap'
import type { Test } from 'tap'
import argon2 from 'argon2'
import type { FastifyInstance } from 'fastify'
import { hashPassword, needsRehash, verifyPassword } from '../../src/index.js'
import type { BasicCredential } from '../../src/index.js'
import { argon2Probe, defaultMaxConcurrentVerifications } from '../../src/methods/basic/password.js'
import type { Argon2Parameters } from '../../src/methods/basic/password.js'
import { basicHeader, buildApp } from '../helpers/app.js'
import { captureLogs, median } from '../helpers/security.js'

interface Run { kind: 'verify' | 'hash', set: string, done: Promise<unknown> }
const setOf = (p: Pick<Argon2Parameters, 'memoryCost' | 'timeCost' | 'parallelism'>): string => `m=${p.memoryCost},t=${p.timeCost},p=${p.parallelism}`
const CURRENT = 'm=19456,t=2,p=1'

/** Records every argon2 computation Basic makes while the test runs. */
function probe (t: Test): { runs: Run[], inFlight: () => number, peak: () => number, settled: () => Promise<void> } {
  const runs: Run[] = []
  let inFlight = 0
  let peak = 0
  argon2Probe.run = (kind, params, done) => {
    runs.push({ kind, set: setOf(params), done })
    peak = Math.max(peak, ++inFlight)
    done.then(() => { inFlight-- }, () => { inFlight-- })
  }
  t.teardown(() => { delete argon2Probe.run })
  return {
    runs,
    inFlight: () => inFlight,
    peak: () => peak,
    // Every computation so far has finished, and what was chained on it has run.
    settled: async () => {
      await Promise.allSettled(runs.map((r) => r.done))
      for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
    }
  }
}

async function basicApp (records: Map<string, BasicCredential>, extra: Record<string, unknown> = {}, server = {}): Promise<FastifyInstance> {
  const app = await buildApp({ basic: { findCredential: (u) => records.get(u) ?? null, ...extra }, rateLimit: false }, server)
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  return app
}
const login = (app: FastifyInstance, user: string, password: string) => app.inject({ url: '/me', headers: { authorization: basicHeader(user, password) } })

t.test('[issue 12.7] every refusal runs one computation with the costliest parameter set in use (unknown user, wrong password, old or new hash)', async (t) => {
  // Before the fix an unknown user ran one computation with hashPassword's set only
  // (m=19456,t=2), while a user whose hash had costlier parameters ran those: enumeration by timing.
  const OLD = { memoryCost: 32768, timeCost: 3, parallelism: 1 } // costlier than today's (work 98,304 vs 38,912)
  const records = new Map<string, BasicCredential>([
    ['alice', { user: { id: 'alice' }, passwordHash: await hashPassword('alice-pw') }],
    ['legacy', { user: { id: 'legacy' }, passwordHash: await argon2.hash('legacy-pw', { type: argon2.argon2id, ...OLD }) }]
  ])
  const work = probe(t)
  const app = await basicApp(records)
  t.teardown(() => app.close())
  await work.settled()
  const during = async (user: string, password: string, status: number): Promise<string[]> => {
    const from = work.runs.length
    t.equal((await login(app, user, password)).statusCode, status, `${user} → ${status}`)
    const runs = work.runs.slice(from).filter((r) => r.kind === 'verify').map((r) => r.set)
    await work.settled()
    return runs.sort()
  }
  t.same(await during('nobody', 'x', 401), [CURRENT], 'before any costlier record: the unknown user costs today\'s set')
  t.same(await during('legacy', 'wrong', 401), [setOf(OLD)], 'the first record with a costlier set...')
  t.ok(work.runs.some((r) => r.kind === 'hash' && r.set === setOf(OLD)), '...makes an equaliser with that set (once, in the background)')
  t.same(await during('nobody', 'x', 401), [setOf(OLD)], 'unknown user: the costliest set')
  t.same(await during('nobody-else', 'y', 401), [setOf(OLD)], 'every unknown user')
  t.same(await during('alice', 'wrong', 401), [CURRENT, setOf(OLD)].sort(), 'cheaper hash, wrong password: its own set and the costliest, side by side')
  t.same(await during('legacy', 'wrong', 401), [setOf(OLD)], 'costliest hash: just its own')
  t.same(await during('alice', 'alice-pw', 200), [CURRENT, setOf(OLD)].sort(), 'a correct password is checked the same way (the outcome is not known in advance)')
  t.equal(work.runs.filter((r) => r.kind === 'hash' && r.set === setOf(OLD)).length, 1, 'one equaliser per costlier set, made once')
})

t.test('[issue 12.7] wall clock: an unknown user, an old-parameter hash and a new one refuse in comparable time', async (t) => {
  // Before the fix the old-parameter user (5× the work) answered 7.2× slower than an unknown user in our run.
  // The bound (2×) sits far from both the bug (5×) and the fix (1×), so a loaded machine does not decide it.
  const OLD = { memoryCost: 65536, timeCost: 3, parallelism: 1 }
  const records = new Map<string, BasicCredential>([
    ['alice', { user: { id: 'alice' }, passwordHash: await hashPassword('alice-pw') }],
    ['legacy', { user: { id: 'legacy' }, passwordHash: await argon2.hash('legacy-pw', { type: argon2.argon2id, ...OLD }) }]
  ])
  const work = probe(t)
  const app = await basicApp(records)
  t.teardown(() => app.close())
  await login(app, 'legacy', 'warm-up') // the process sees the old set once (as after any real login)
  await work.settled()
  const times: Record<string, number[]> = { unknown: [], legacy: [], alice: [] }
  for (let i = 0; i < 5; i++) {
    for (const [name, user] of [['unknown', `nobody${i}`], ['legacy', 'legacy'], ['alice', 'alice']] as const) {
      const start = process.hrtime.bigint()
      t.equal((await login(app, user, `wrong${i}`)).statusCode, 401)
      ;(times[name] as number[]).push(Number(process.hrtime.bigint() - start) / 1e6)
    }
  }
  const medians = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]))
  const ratio = Math.max(...Object.values(medians)) / Math.min(...Object.values(medians))
  t.ok(ratio < 2, `medians ${JSON.stringify(Object.fromEntries(Object.entries(medians).map(([k, v]) => [k, `${v.toFixed(1)} ms`])))}: slowest/fastest ${ratio.toFixed(2)} < 2`)
})

t.test('[issue 12.7, fail closed] a record hash with absurd parameters, another algorithm or no string is a 500, and nothing is computed', async (t) => {
  // Before the fix a record with m=4 GiB was handed to argon2 (one login = 4 GiB and seconds of
  // CPU: an amplification attack on ourselves), and a "$scrypt$…" PHC string was refused as a wrong password (401).
  const salt = 'c29tZXNhbHRzb21lc2FsdA'
  const digest = 'aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g'
  const bad: Record<string, unknown> = {
    memory: `$argon2id$v=19$m=4194304,t=2,p=1$${salt}$${digest}`,
    time: `$argon2id$v=19$m=19456,t=10000,p=1$${salt}$${digest}`,
    lanes: `$argon2id$v=19$m=19456,t=2,p=255$${salt}$${digest}`,
    scrypt: `$scrypt$ln=16,r=8,p=1$${salt}$${digest}`,
    bcrypt: '$2b$12$abcdefghijklmnopqrstuuM3aKQ9zHn0pTz1Yq1Nq1d6bY5cL2Jm2',
    version: `$argon2id$v=99$m=19456,t=2,p=1$${salt}$${digest}`,
    params: `$argon2id$v=19$m=19456,t=2$${salt}$${digest}`,
    number: 42
  }
  const records = new Map<string, BasicCredential>(Object.entries(bad).map(([name, passwordHash]) => [name, { user: { id: name }, passwordHash: passwordHash as string }]))
  const logs = captureLogs('error')
  const work = probe(t)
  const app = await basicApp(records, {}, { logger: logs.logger })
  t.teardown(() => app.close())
  await work.settled()
  const before = work.runs.length
  for (const name of Object.keys(bad)) {
    const res = await login(app, name, 'x')
    t.equal(res.statusCode, 500, `${name}: 500`)
    t.equal(res.json().code, 'FST_MULTIAUTH_CALLBACK_ERROR')
  }
  t.equal(work.runs.length, before, 'no argon2 computation for any of them')
  t.notMatch(logs.text(), new RegExp(digest), 'the hash is not logged')
  t.match(logs.text(), /asks for more argon2 work than allowed/)
  // The public helper refuses the same way (m just above the 256 MiB limit: never computed).
  await t.rejects(verifyPassword(`$argon2id$v=19$m=262145,t=1,p=1$${salt}$${digest}`, 'x'), /more argon2 work than allowed/)
  await t.rejects(verifyPassword(`$scrypt$ln=16,r=8,p=1$${salt}$${digest}`, 'x'), /not an argon2 PHC string/)
})

t.test('[issue 12.10] at most maxConcurrentVerifications argon2 computations at once; the others wait their turn', async (t) => {
  // Before the fix there was no bound: every concurrent login started its argon2 run (20 here),
  // each with 19 MiB, all on libuv's 4 threads (which fs and dns.lookup share).
  const work = probe(t)
  const app = await basicApp(new Map(), { maxConcurrentVerifications: 2 })
  t.teardown(() => app.close())
  await work.settled()
  const statuses = await Promise.all(Array.from({ length: 20 }, async (_, i) => (await login(app, `nobody${i}`, 'x')).statusCode))
  t.same([...new Set(statuses)], [401], 'every one answered (401), none refused for waiting')
  t.equal(work.peak(), 2, 'never more than 2 at once')
  t.equal(work.runs.filter((r) => r.kind === 'verify').length, 20, 'and each was verified')
  await t.rejects(buildApp({ basic: { verify: () => null, maxConcurrentVerifications: 2 } }), /maxConcurrentVerifications only applies with basic.findCredential/)
  await t.rejects(buildApp({ basic: { findCredential: () => null, maxConcurrentVerifications: 0 } }), /basic.maxConcurrentVerifications must be a positive integer/)
})

t.test('[issue 12.10] the default bound: one per core, at most libuv\'s pool minus one', async (t) => {
  const expected = Math.max(1, Math.min((await import('node:os')).availableParallelism(), Number(process.env.UV_THREADPOOL_SIZE ?? 4) - 1))
  t.equal(defaultMaxConcurrentVerifications(), expected)
  const work = probe(t)
  const app = await basicApp(new Map())
  t.teardown(() => app.close())
  await work.settled()
  await Promise.all(Array.from({ length: 12 }, async (_, i) => await login(app, `nobody${i}`, 'x')))
  t.equal(work.peak(), expected, `peak ${expected} with the default`)
})

t.test('[issue 12.10] a wait for an argon2 slot is bounded by `callbackTimeout`: 503 FST_MULTIAUTH_BUSY with Retry-After, before the guard\'s own timeout', async (t) => {
  // Before the fix the option did not exist (registration failed) and nothing bounded argon2 work at all.
  // One slot; R0's hash costs far more than `callbackTimeout` (13.5× today's set: about 340 ms on an idle
  // machine, more under load, against 100 ms), so R0 holds the slot well after its own 503; R1, an
  // unknown user found by a synchronous findCredential, waits `callbackTimeout` and gets the 503 BUSY: its wait
  // timer is set before its guard's own (same duration), so it fires first.
  const SLOW = { memoryCost: 65536, timeCost: 8, parallelism: 1 }
  const records = new Map<string, BasicCredential>([['slow', { user: { id: 'slow' }, passwordHash: await argon2.hash('pw', { type: argon2.argon2id, ...SLOW }) }]])
  const work = probe(t)
  const app = await buildApp({ basic: { findCredential: (u) => records.get(u) ?? null, maxConcurrentVerifications: 1 }, rateLimit: false, callbackTimeout: 100 })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  await work.settled()
  const r0 = login(app, 'slow', 'x')
  const end = Date.now() + 5000
  while (!work.runs.some((r) => r.kind === 'verify' && r.set === setOf(SLOW)) && Date.now() < end) await new Promise((resolve) => setImmediate(resolve))
  const r1 = await login(app, 'nobody', 'x')
  t.equal(r1.statusCode, 503)
  t.equal(r1.json().code, 'FST_MULTIAUTH_BUSY', 'no argon2 slot within timeout')
  t.equal(r1.headers['retry-after'], '1')
  t.equal((await r0).json().code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT', 'R0 timed out on its own (its argon2 run goes on)')
  t.equal(work.runs.filter((r) => r.kind === 'verify').length, 1, 'R1 was never verified')
  await work.settled() // R0's computation ends and gives the slot back
  // The next login gets the slot and is verified (against the SLOW equaliser now, far longer than
  // this app's 100 ms timeout, so it times out on its own), not refused for want of a slot.
  const verified = work.runs.filter((r) => r.kind === 'verify').length
  t.equal((await login(app, 'nobody', 'x')).json().code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT', 'then the next login gets the slot')
  t.equal(work.runs.filter((r) => r.kind === 'verify').length, verified + 1)
})

t.test('[issue 12.10, class] onRehash runs outside the argon2 slot: a slow write does not hold it', async (t) => {
  // Before the fix there were no slots. This guards the fix itself: the rehash is computed in
  // the slot, the application's write runs after the slot is given back.
  const WEAK = { memoryCost: 8192, timeCost: 1, parallelism: 1 }
  const records = new Map<string, BasicCredential>([['old', { user: { id: 'old' }, passwordHash: await argon2.hash('pw', { type: argon2.argon2id, ...WEAK }) }]])
  let release = (): void => {}
  let waiting = false
  const written: string[] = []
  const app = await basicApp(records, {
    maxConcurrentVerifications: 1,
    onRehash: async (_user: unknown, hash: string) => {
      waiting = true
      await new Promise<void>((resolve) => { release = resolve })
      written.push(hash)
    }
  })
  t.teardown(() => app.close())
  const slow = login(app, 'old', 'pw')
  const end = Date.now() + 5000
  while (!waiting && Date.now() < end) await new Promise((resolve) => setImmediate(resolve))
  t.equal((await login(app, 'nobody', 'x')).statusCode, 401, 'another login gets the slot while onRehash waits')
  release()
  t.equal((await slow).statusCode, 200)
  t.equal(written.length, 1)
  t.notOk(needsRehash(written[0] as string), 'rehashed with today\'s parameters')
})
