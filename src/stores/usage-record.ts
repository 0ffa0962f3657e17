import { StoreDataError } from '../core/errors.js'
import { isPlainObject } from '../core/validate.js'

// The value a store keeps for an API key's usage (`recordUsage`, read back with `get`): JSON
// `{"count":<requests>,"lastUsedAt":<ms since the epoch>}`. RedisStore's script writes the same
// shape (src/stores/redis-scripts.ts); MemoryStore and the fallback for a custom store without
// `recordUsage` merge it here.

export interface UsageTotals {
  /** Requests counted so far. */
  count: number
  /** The latest request counted, in ms since the epoch. */
  lastUsedAt: number
}

function isCount (value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

/** A stored usage value; `null` when there is none. Anything else than the shape above is bad data (a 500), never a zero. */
export function parseUsage (value: string | null): UsageTotals | null {
  if (value === null) return null
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch (err) {
    throw new StoreDataError({ cause: err })
  }
  if (!isPlainObject(parsed) || !isCount(parsed.count) || !isCount(parsed.lastUsedAt)) {
    throw new StoreDataError({ cause: new TypeError('API-key usage record has the wrong shape') })
  }
  return { count: parsed.count, lastUsedAt: parsed.lastUsedAt }
}

/**
 * The stored value after adding `count` requests, the latest at `atMs`. `lastUsedAt` never goes
 * back (instances flush out of order, clocks differ a little). A value that cannot be read is
 * replaced: counting must go on, and the write path is no place for a 500.
 */
export function addUsage (current: string | null, count: number, atMs: number): string {
  let totals: UsageTotals | null = null
  try {
    totals = parseUsage(current)
  } catch {}
  return JSON.stringify({
    count: (totals?.count ?? 0) + count,
    lastUsedAt: Math.max(totals?.lastUsedAt ?? 0, atMs)
  })
}
