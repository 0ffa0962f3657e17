import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { root } from './helpers/example-process.js'
import { redisSkipReason } from './helpers/redis.js'

// bench/failover.ts in its short mode: for Sentinel and for a Cluster with replicas, two app
// instances (processes) under autocannon while the primary / a master is SIGKILLed, the load
// stopping a second after both instances answered every valid credential again. The pass
// criteria are asserted here from its JSON, not from its exit code alone.
const skip = redisSkipReason()
t.setTimeout(300_000)

interface Figures {
  pass: boolean
  error?: string
  topologies: Array<{
    topology: string
    violations: string[]
    instances: Array<{
      instance: string
      recoveryMs: number | null
      transportErrors: Record<string, number>
      kinds: Record<string, { refused?: number, recoveryMs?: number | null, phases: Record<'before' | 'during' | 'after', Record<string, number>> }>
    }>
  }>
}

t.test('failover under load: Sentinel and Cluster, no 200 for a refused credential, no 500, service resumes', { skip }, async (t) => {
  const run = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/failover.ts'], {
    cwd: root,
    env: { ...process.env, FAILOVER_TOPOLOGIES: 'sentinel,cluster', FAILOVER_SECONDS: '20', FAILOVER_KILL_AT: '2', FAILOVER_AFTER: '1' },
    encoding: 'utf8',
    timeout: 240_000,
    maxBuffer: 1 << 24
  }).then(({ stdout }) => ({ stdout, code: 0 }), (err: { stdout?: string, stderr?: string, code?: number }) => ({ stdout: `${err.stdout ?? ''}\n${err.stderr ?? ''}`, code: err.code ?? 1 }))
  t.comment(run.stdout.split('\n').filter((line) => !line.startsWith('FAILOVER ')).join('\n'))
  const line = run.stdout.split('\n').find((l) => l.startsWith('FAILOVER '))
  if (line === undefined) throw new Error(`no FAILOVER line:\n${run.stdout}`)
  const figures = JSON.parse(line.slice('FAILOVER '.length)) as Figures
  t.equal(figures.error, undefined, 'the run completed')
  t.same(figures.topologies.map((r) => r.topology), ['sentinel', 'cluster'])

  for (const result of figures.topologies) {
    t.test(`[${result.topology}]`, async (t) => {
      t.equal(result.instances.length, 2, 'two instances')
      for (const instance of result.instances) {
        t.not(instance.recoveryMs, null, `${instance.instance} answered a valid credential again after the kill (${String(instance.recoveryMs)} ms)`)
        for (const [name, kind] of Object.entries(instance.kinds)) {
          for (const [phase, counts] of Object.entries(kind.phases)) {
            const statuses = Object.keys(counts).map(Number)
            t.notOk(statuses.some((s) => s >= 500 && s !== 503), `${instance.instance} "${name}" ${phase}: no 5xx but 503 (${JSON.stringify(counts)})`)
            if (kind.refused !== undefined) {
              t.ok(statuses.length > 0, `${instance.instance} "${name}" ${phase}: answered`)
              t.equal(counts[200] ?? 0, 0, `${instance.instance} "${name}" ${phase}: never 200 (${JSON.stringify(counts)})`)
              t.ok(statuses.every((s) => s === kind.refused || s === 503), `${instance.instance} "${name}" ${phase}: ${kind.refused} or 503 only`)
            }
          }
          if (kind.refused === undefined) {
            t.ok((kind.phases.before[200] ?? 0) > 0, `${instance.instance} "${name}": 200 before the kill`)
            t.not(kind.recoveryMs, null, `${instance.instance} "${name}": 200 again after the kill (${String(kind.recoveryMs)} ms)`)
          }
        }
      }
      t.same(result.violations, [], 'the bench saw no violation')
    })
  }
  t.ok(figures.pass, 'the bench passed')
  t.equal(run.code, 0, 'exit code 0')
})
