import { Writable } from 'node:stream'
import type { FastifyServerOptions } from 'fastify'

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

/** fast-check runs per property: FUZZ_RUNS env, default 10,000 (the floor for CI). */
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 10_000)

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}
