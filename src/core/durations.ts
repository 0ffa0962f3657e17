import { parse } from '@lukeed/ms'
import { MultiauthOptionError } from './errors.js'

/**
 * A duration option: milliseconds, or a string such as `'15m'`, `'2 hours'`, `'1 minute'` (the
 * syntax @fastify/rate-limit and `ms` use). Every duration option of the plugin takes one, so a
 * number always means milliseconds, whichever option it is given to.
 */
export type Duration = number | string

interface Bounds {
  /** Smallest accepted value in ms (default 1; 0 where "off" is allowed). */
  min?: number
  max?: number
  /** Says what a too-small value probably was (a number of seconds from 0.x, say). */
  hint?: string
}

/** `@lukeed/ms` reads a zero (`'0s'`, `'0'`) as nothing, its zero being falsy: a zero of a unit it knows is 0. */
function parseText (text: string): number | undefined {
  const ms = parse(text)
  if (ms !== undefined) return ms
  const zero = /^-?0*\.?0+(?=\s*[a-z]*$)/i.exec(text)
  return zero !== null && parse('1' + text.slice(zero[0].length)) !== undefined ? 0 : undefined
}

/** Reads a duration option at registration: `undefined` stays `undefined`, anything unreadable is an option error. */
export function durationMs (value: unknown, path: string, bounds: Bounds = {}): number | undefined {
  if (value === undefined) return undefined
  const ms = typeof value === 'string' ? parseText(value) : value
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    throw new MultiauthOptionError(`${path} must be a number of milliseconds or a duration such as '15m' or '2 hours' (got ${JSON.stringify(value)})`)
  }
  const rounded = Math.round(ms)
  const min = bounds.min ?? 1
  if (rounded < min) {
    throw new MultiauthOptionError(`${path} must be at least ${min} ms (got ${JSON.stringify(value)})${bounds.hint === undefined ? '' : `; ${bounds.hint}`}`)
  }
  if (bounds.max !== undefined && rounded > bounds.max) throw new MultiauthOptionError(`${path} must be at most ${bounds.max} ms (got ${JSON.stringify(value)})`)
  return rounded
}

/**
 * A token lifetime in whole seconds (JWT `exp` and `iat` have one-second precision). A number must
 * be a whole number of seconds in milliseconds: `900` or `3600` is refused rather than taken for
 * 0.9 s or 3.6 s, since it is almost certainly a count of seconds written for 0.x.
 */
export function durationSeconds (value: unknown, path: string, bounds: { min?: number, max?: number } = {}): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value) && value % 1000 !== 0) {
    throw new MultiauthOptionError(`${path} is in milliseconds and must be whole seconds (got ${value}); for ${value} seconds write '${value}s'`)
  }
  const ms = durationMs(value, path, { min: bounds.min ?? 1000, max: bounds.max })
  return ms === undefined ? undefined : Math.floor(ms / 1000)
}
