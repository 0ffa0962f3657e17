import { relative } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyServerOptions } from 'fastify'
import fc from 'fast-check'

/** A pino destination that keeps every line, so a test can read what was logged. */
export function captureLogs (level = 'trace'): { logger: FastifyServerOptions['logger'], text: () => string, lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) { chunks.push(String(chunk)); callback() }
  })
  return {
    logger: { level, stream } as FastifyServerOptions['logger'],
    text: () => chunks.join(''),
    lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
  }
}

function intFromEnv (name: string, value: string | undefined, fallback: () => number, min: number): number {
  if (value === undefined || value === '') return fallback()
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got "${value}"`)
  return n
}

/** fast-check runs per property: FUZZ_RUNS env, default 10,000 (the floor for CI). */
export const FUZZ_RUNS = intFromEnv('FUZZ_RUNS', process.env.FUZZ_RUNS, () => 10_000, 1)

/**
 * The seed of every fast-check property in this process: FUZZ_SEED env, else drawn at
 * random once per test file. Set globally too, so no property can run on an unprinted seed.
 */
export const FUZZ_SEED = intFromEnv('FUZZ_SEED', process.env.FUZZ_SEED, () => Math.floor(Math.random() * 2 ** 31), -(2 ** 31))
if (FUZZ_SEED >= 2 ** 31) throw new Error(`FUZZ_SEED must fit in 32 bits, got ${FUZZ_SEED}`)
fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: FUZZ_SEED })

/**
 * Timeout for a whole fuzz test file, to pass to the root `t.setTimeout()`: its run time grows
 * with FUZZ_RUNS, so the suite's 120 s per file does not fit `FUZZ_RUNS=50000`, nor 10,000 on a
 * loaded machine (fuzz-methods, 5 properties: ~25 s idle, 78 s measured on a loaded two-core
 * machine). 120 s + 20 ms per run: 320 s at the default, four times the loaded figure.
 */
export const FUZZ_FILE_TIMEOUT_MS = 120_000 + FUZZ_RUNS * 20

/**
 * Whether to check that the generators reached each outcome (a valid key, a 400, a 200...).
 * Those counts are random unless FUZZ_SEED is set; at 1,000 runs or more the rarest one
 * (a 400 in the bearer-token property, about 1.8 % of runs) is expected 18+ times, so
 * P(none) < 2e-8. Fewer runs (a quick local FUZZ_RUNS=100) skip these checks.
 */
export const COVERAGE = FUZZ_RUNS >= 1000 ? {} : { skip: `FUZZ_RUNS=${FUZZ_RUNS} < 1000: too few runs for the coverage check` }

const testFile = relative(process.cwd(), process.argv[1] ?? 'test/<file>.test.ts')

/**
 * fast-check parameters for one property: the process's seed and `numRuns`. Prints the
 * seed and the command that replays it (fast-check's failure report prints seed and path too).
 */
export function fuzzParams<T> (t: { comment: (...args: unknown[]) => void }, numRuns = FUZZ_RUNS): fc.Parameters<T> {
  t.comment(`fast-check seed ${FUZZ_SEED}, ${numRuns} runs; replay: FUZZ_SEED=${FUZZ_SEED} FUZZ_RUNS=${numRuns} npx tap ${testFile}`)
  return { seed: FUZZ_SEED, numRuns }
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}
