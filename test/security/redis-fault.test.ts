// Faults: Redis killed under load (real HTTP, loopback) while API keys are checked against it,
// on every topology (standalone, Cluster: every master, Sentinel: primary and replica). Fail
// closed (503 only while it is down, never 200 for a revoked key, never 500) and recover after
// the restart without restarting the process.
//
// No wall-clock windows: the load driver (test/helpers/phased-load.ts) tags every request
// with the phase in which it was sent and answered, and the test moves to the next phase
// only after the real event (revoke resolved, process dead and port closed, restart done,
// a probe answered 200); test/helpers/fault-run.ts holds the steps and the per-phase
// assertions. Every wait has a deadline that fails the test with a message.
import t from 'tap'
import { RedisStore } from '../../src/index.js'
import { buildApp } from '../helpers/app.js'
import { FAULT_PHASES, faultRun } from '../helpers/fault-run.js'
import { PhasedLoad } from '../helpers/phased-load.js'
import { eachTopology } from '../helpers/redis-topology.js'

const VALID = 'key-valid-0001'
const REVOKED = 'key-revoked-0002'
const REVOKED_DURING_RUN = 'key-soon-revoked-0003'

eachTopology(t, '[ASVS 4.0.3 V4.1.5 fail securely, design: stores fail closed] Redis killed under load', async (t, redis) => {
  const store = new RedisStore(redis.storeOptions())
  t.teardown(() => store.close())
  await store.set(`apikey:${VALID}`, 'active', 600_000)
  await store.set(`apikey:${REVOKED}`, 'revoked', 600_000)
  await store.set(`apikey:${REVOKED_DURING_RUN}`, 'active', 600_000)

  // A test-only use of the public API: the application's key records live in the store.
  const app = await buildApp({
    store,
    apiKey: { verify: async (key) => (await store.get(`apikey:${key}`)) === 'active' ? { id: key } : null }
  })
  app.get('/r', { onRequest: app.authGuard(['apiKey']) }, async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const load = new PhasedLoad(base, {
    valid: { path: '/r', headers: { 'x-api-key': VALID } },
    revoked: { path: '/r', headers: { 'x-api-key': REVOKED } },
    'revoked during the run': { path: '/r', headers: { 'x-api-key': REVOKED_DURING_RUN } }
  }, { phases: FAULT_PHASES, workersPerTarget: 3 })
  t.teardown(() => load.stop())

  await faultRun(t, load, {
    redis,
    valid: ['valid'],
    refused: ['revoked'],
    revokedDuringRun: 'revoked during the run',
    revoke: async () => { await store.set(`apikey:${REVOKED_DURING_RUN}`, 'revoked', 600_000) }
  })
  // The revocation written during the run must survive the restart: append-only file, fsync always.
}, { persist: true })
