import argon2 from 'argon2'
import { timingSafeEqual } from 'node:crypto'
import os from 'node:os'
import { sha256 } from '../../lib/hash.js'

/**
 * argon2id parameters: OWASP Password Storage Cheat Sheet's first recommended set
 * (m=19 MiB, t=2, p=1). Hashes made with weaker parameters are reported by `needsRehash`.
 */
export const PASSWORD_HASH_OPTIONS = Object.freeze({
  type: argon2.argon2id,
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1
})

/**
 * The most one stored hash may ask for. A PHC string is data: one that says m=4 GiB would make
 * every login against it an amplification attack on ourselves, so it is refused (a server
 * error) instead of computed. 256 MiB, t=16 and p=16 are well above every published
 * recommendation for interactive logins (OWASP: 19–46 MiB; RFC 9106's second set: 64 MiB, t=3, p=4).
 */
export const ARGON2_LIMITS = Object.freeze({ memoryCost: 262_144, timeCost: 16, parallelism: 16 })

/** What a PHC string says about the work of one argon2 computation. */
export interface Argon2Parameters {
  type: 'argon2d' | 'argon2i' | 'argon2id'
  version: number
  memoryCost: number
  timeCost: number
  parallelism: number
}

/** `PASSWORD_HASH_OPTIONS` as parameters (argon2 version 1.3, what `hashPassword` writes). */
export const CURRENT_PARAMETERS: Readonly<Argon2Parameters> = Object.freeze({
  type: 'argon2id',
  version: 0x13,
  memoryCost: PASSWORD_HASH_OPTIONS.memoryCost,
  timeCost: PASSWORD_HASH_OPTIONS.timeCost,
  parallelism: PASSWORD_HASH_OPTIONS.parallelism
})

const TYPES: ReadonlySet<string> = new Set(['argon2d', 'argon2i', 'argon2id'])
const DIGITS = /^[0-9]{1,10}$/

/**
 * Reads the parameters of an argon2 PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
 * Throws for anything else, and for parameters above `ARGON2_LIMITS`; the message never
 * contains the hash.
 */
export function argon2Parameters (hash: unknown): Argon2Parameters {
  const fields = typeof hash === 'string' ? hash.split('$') : []
  // ['', type, 'v=19', params, salt, hash]; the version field may be absent (then 0x10).
  const versioned = fields.length === 6
  if ((fields.length !== 5 && !versioned) || fields[0] !== '' || !TYPES.has(fields[1] as string)) {
    throw new TypeError('the password hash is not an argon2 PHC string')
  }
  let version = 0x10
  if (versioned) {
    if (fields[2] !== 'v=19' && fields[2] !== 'v=16') throw new TypeError('the password hash has an unknown argon2 version')
    version = fields[2] === 'v=19' ? 0x13 : 0x10
  }
  const values: Record<string, number> = {}
  for (const pair of (fields[versioned ? 3 : 2] as string).split(',')) {
    const [name, value] = pair.split('=')
    if (name === 'data' || name === 'keyid') continue
    if ((name !== 'm' && name !== 't' && name !== 'p') || name in values || value === undefined || !DIGITS.test(value)) {
      throw new TypeError('the password hash has malformed argon2 parameters')
    }
    values[name] = Number(value)
  }
  const { m, t, p } = values
  if (m === undefined || t === undefined || p === undefined) throw new TypeError('the password hash lacks an argon2 parameter (m, t, p)')
  if (m > ARGON2_LIMITS.memoryCost || t > ARGON2_LIMITS.timeCost || p > ARGON2_LIMITS.parallelism) {
    throw new RangeError(`the password hash asks for more argon2 work than allowed (m ≤ ${ARGON2_LIMITS.memoryCost} KiB, t ≤ ${ARGON2_LIMITS.timeCost}, p ≤ ${ARGON2_LIMITS.parallelism})`)
  }
  return { type: fields[1] as Argon2Parameters['type'], version, memoryCost: m, timeCost: t, parallelism: p }
}

/** The work of one computation with these parameters, to compare parameter sets: memory (KiB) × passes. */
export function argon2Work (params: Pick<Argon2Parameters, 'memoryCost' | 'timeCost'>): number {
  return params.memoryCost * params.timeCost
}

/**
 * Internal, for tests (not exported by the package): sees every argon2 computation Basic makes
 * (its parameters and its promise), so tests count work instead of timing it.
 */
export const argon2Probe: { run?: (kind: 'verify' | 'hash', params: Argon2Parameters, done: Promise<unknown>) => void } = {}

/** `verifyPassword` for an already parsed hash, reported to the probe. */
export async function verifyParsed (hash: string, params: Argon2Parameters, password: string): Promise<boolean> {
  const done = argon2.verify(hash, password)
  argon2Probe.run?.('verify', params, done)
  return await done
}

/** A hash of `password` with exactly these parameters (a timing equaliser, or a rehash), reported to the probe. */
export async function hashWithParameters (password: string, params: Argon2Parameters): Promise<string> {
  const done = argon2.hash(password, { type: argon2[params.type], version: params.version, memoryCost: params.memoryCost, timeCost: params.timeCost, parallelism: params.parallelism })
  argon2Probe.run?.('hash', params, done)
  return await done
}

/** Hashes a password with argon2id; the result is a self-describing PHC string. */
export async function hashPassword (password: string): Promise<string> {
  if (typeof password !== 'string') throw new TypeError('hashPassword: password must be a string')
  return await argon2.hash(password, PASSWORD_HASH_OPTIONS)
}

/**
 * Checks a password against a stored argon2 hash in constant time. Resolves `false` for
 * a wrong password; rejects when the stored hash is not a valid argon2 hash, or asks for
 * more work than `ARGON2_LIMITS` (bad data is a server error, not a failed login).
 */
export async function verifyPassword (hash: string, password: string): Promise<boolean> {
  argon2Parameters(hash)
  return await argon2.verify(hash, password)
}

/** True when `hash` was made with other (weaker) parameters than `hashPassword` uses now. */
export function needsRehash (hash: string): boolean {
  return argon2.needsRehash(hash, PASSWORD_HASH_OPTIONS)
}

/**
 * Compares two secrets in constant time. Both are hashed first, so neither the length
 * nor the content of `expected` leaks through timing.
 */
export function constantTimeEqual (actual: string, expected: string): boolean {
  return timingSafeEqual(sha256(actual), sha256(expected))
}

/**
 * Default of `basic.maxConcurrentVerifications`: one argon2 computation per core, and never
 * all of libuv's threads (UV_THREADPOOL_SIZE, default 4), which fs, dns.lookup, zlib and
 * crypto share: a flood of logins must not stall them.
 */
export function defaultMaxConcurrentVerifications (): number {
  const configured = Number(process.env.UV_THREADPOOL_SIZE)
  const threads = Number.isSafeInteger(configured) && configured > 0 ? configured : 4
  return Math.max(1, Math.min(os.availableParallelism(), threads - 1))
}

interface SlotWaiter { grant: (granted: boolean) => void, timer: NodeJS.Timeout | undefined }

/**
 * At most `size` argon2 verifications at once; the others wait in arrival order, each for
 * at most the time it is given. A slot given back goes straight to the first waiter.
 */
export class VerificationSlots {
  #free: number
  readonly #waiting: SlotWaiter[] = []

  constructor (readonly size: number) {
    this.#free = size
  }

  /** Verifications waiting for a slot. */
  get waiting (): number {
    return this.#waiting.length
  }

  /** Resolves `true` once the caller holds a slot (it must `release` it), `false` if none came within `waitMs` (Infinity: no bound). */
  async acquire (waitMs: number): Promise<boolean> {
    if (this.#free > 0) {
      this.#free--
      return true
    }
    if (waitMs <= 0) return false
    return await new Promise<boolean>((resolve) => {
      const waiter: SlotWaiter = { grant: resolve, timer: undefined }
      if (Number.isFinite(waitMs)) {
        waiter.timer = setTimeout(() => {
          const index = this.#waiting.indexOf(waiter)
          if (index !== -1) this.#waiting.splice(index, 1)
          resolve(false)
        }, waitMs)
      }
      this.#waiting.push(waiter)
    })
  }

  release (): void {
    const next = this.#waiting.shift()
    if (next === undefined) {
      this.#free++
      return
    }
    clearTimeout(next.timer)
    next.grant(true)
  }
}
