import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { redisSkipReason } from './helpers/redis.js'

const run = promisify(execFile)

// A real run of `npm run bench` in smoke mode: two variants, two rounds, tiny durations.
t.test('the harness measures variants and writes the table and the chart', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'multiauth-bench-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const { stdout } = await run(process.execPath, ['bench/run.mjs'], {
    env: { ...process.env, BENCH_DURATION: '0.5', BENCH_WARMUP: '0.2', BENCH_ROUNDS: '2', BENCH_CONNECTIONS: '2', BENCH_VARIANTS: 'ours-api-key', BENCH_OUT_DIR: out },
    timeout: 60_000
  })
  const rowPattern = (name: string): RegExp => new RegExp(`^\\| \`${name}\` — [^|]+ \\| [\\d,]+ \\| \\d+(\\.\\d+)? \\| \\d+\\.\\d\\d \\(\\d+\\.\\d\\d–\\d+\\.\\d\\d\\) \\| \\d+\\.\\d \\| \\d+\\.\\d\\d \\|`, 'm')
  t.match(stdout, rowPattern('bare'), 'bare row printed')
  t.match(stdout, rowPattern('ours-api-key'), 'ours-api-key row printed')
  t.match(stdout, /^\| `bare` — .* \| 1\.00 \(1\.00–1\.00\) \|/m, 'bare is its own reference')
  t.notMatch(stdout, /⚠/, 'no failed requests')
  const md = readFileSync(join(out, 'benchmarks.md'), 'utf8')
  t.match(md, rowPattern('ours-api-key'))
  t.match(md, /2 rounds; per variant and round: 0\.2 s warm-up, then 0\.5 s measured/)
  t.match(md, /server CPU per request from `process\.cpuUsage\(\)`/, 'says where the CPU column comes from')
  // The CPU column is measured, not a placeholder: bare's cost per request is a positive number.
  const bareCpu = Number(/^\| `bare` — [^|]+ \| [\d,]+ \| [\d.]+ \| [^|]+ \| (\d+\.\d) \|/m.exec(md)?.[1])
  t.ok(bareCpu > 0 && bareCpu < 10_000, `bare: ${bareCpu} µs of server CPU per request`)
  t.match(md, /!\[[^\]]+\]\(benchmarks\.svg\)/)
  const svg = readFileSync(join(out, 'benchmarks.svg'), 'utf8')
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  t.equal(svg.match(/<rect x=/g)?.length, 2, 'one bar per variant')
  t.match(svg, />ours-api-key</)
})

t.test('a bad setting or an unknown variant is a clear error', async (t) => {
  const stderrOf = async (env: Record<string, string>): Promise<string> => {
    try {
      await run(process.execPath, ['bench/run.mjs'], { env: { ...process.env, ...env }, timeout: 20_000 })
    } catch (err) {
      return (err as { stderr: string }).stderr
    }
    return 'exited 0'
  }
  t.match(await stderrOf({ BENCH_VARIANTS: 'nope' }), /unknown variant "nope"/)
  t.match(await stderrOf({ BENCH_ROUNDS: 'x' }), /BENCH_ROUNDS must be a number/)
})

// bench:memory on a Redis variant: it starts its own redis-server (as `npm run bench` does); the
// table shows every request answered 2xx, so the variant really reached Redis.
t.test('bench:memory runs a Redis variant against a redis-server of its own', { skip: redisSkipReason() }, async (t) => {
  const { stdout } = await run(process.execPath, ['bench/memory.mjs'], {
    env: { ...process.env, BENCH_MEMORY_VARIANTS: 'ours-jwt-revocation-redis', BENCH_MEMORY_REQUESTS: '2000', BENCH_CONNECTIONS: '2', BENCH_OUT_DIR: '' },
    timeout: 120_000
  })
  t.match(stdout, /^\| `ours-jwt-revocation-redis` \| 2,000 \| 0 \| /m, '2,000 requests, all 2xx, none failed')
})
