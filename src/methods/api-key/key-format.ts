import { randomBytes, timingSafeEqual } from 'node:crypto'
import { durationMs } from '../../core/durations.js'
import type { Duration } from '../../core/durations.js'
import type { MultiauthUser } from '../../core/types.js'
import { sha256, sha256Text } from '../../lib/hash.js'

/**
 * API-key format, in the style of GitHub tokens:
 *
 *     <prefix>_<environment>_<secret><checksum>
 *     ak_live_3hT9cQ0pZ1vX8bN2mL4kR7sW5yJ6dF0gA1eC2u0Qk9x
 *
 * - `secret`: 26 base62 characters from the CSPRNG (log2(62^26) ≈ 154.8 bits); the 4 shown
 *   in `start` leave ≈ 131 unseen bits.
 * - `checksum`: CRC32 of everything before it, 6 base62 characters, so a mistyped key is
 *   refused without a lookup and a secret scanner can recognise a real key offline.
 * - `prefix` and `environment` are lower-case letters and digits (no `_`), so the key
 *   splits unambiguously and is selectable with a double click.
 *
 * Only SHA-256 of the key is stored. The record's lookup id is derived from the key too
 * (a second, domain-separated SHA-256), so the plugin can find the record without any
 * secret ever reaching the database.
 */

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
export const API_KEY_SECRET_LENGTH = 26
const CHECKSUM_LENGTH = 6
const TAIL_LENGTH = API_KEY_SECRET_LENGTH + CHECKSUM_LENGTH
/** Characters of the secret shown in `start`. */
const START_SECRET_CHARS = 4
const NAME = /^[a-z][a-z0-9]{0,15}$/
const TAIL = /^[0-9A-Za-z]+$/
const HASH = /^[0-9a-f]{64}$/
const ID_DOMAIN = 'fastify-multiauth api key id\0'
/** Longest key `parseApiKey` looks at: two 16-character names, two `_`, the tail. */
export const API_KEY_MAX_LENGTH = 16 + 1 + 16 + 1 + TAIL_LENGTH

export interface GenerateApiKeyOptions {
  /** Identifies your service's keys, e.g. `"acme"` or `"ak"`: 1-16 lower-case letters or digits, starting with a letter. */
  prefix: string
  /** E.g. `"live"` or `"test"`: 1-16 lower-case letters or digits, starting with a letter. */
  environment: string
}

export interface GeneratedApiKey {
  /** The secret. Show it once to its owner; never store it. */
  key: string
  /** Non-secret lookup id, derived from the key (`apiKeyId(key)`): the record's primary key. */
  id: string
  /** SHA-256 of the key, hex: the only form of the key you store. */
  hash: string
  /** Preview safe to show in a UI: prefix, environment and the first 4 characters of the secret. */
  start: string
  prefix: string
  environment: string
}

export interface ParsedApiKey {
  prefix: string
  environment: string
}

/** A per-key budget for the keyed rate limit: `max` requests per `timeWindow` ms (default: the plugin's `rateLimit.timeWindow`). */
export interface KeyRateLimit {
  max: number
  timeWindow?: number
}

/** What `apiKey.findKey(id)` returns: everything the plugin checks, nothing secret. */
export interface ApiKeyRecord<User = MultiauthUser> {
  /** Becomes `request.auth.user` (and `request.user` with `fastify-multiauth/request-user`). */
  user: User
  /** `hash` from `generateApiKey` (hex SHA-256). */
  hash: string
  /** Granted scopes; `authGuard({ scopes })` requires all of its own. */
  scopes?: readonly string[]
  /** Expiry: milliseconds since the epoch, or a Date. */
  expiresAt?: number | Date | null
  revoked?: boolean
  /** When present it must equal the key's environment. */
  environment?: string
  /** Overrides `rateLimit.max`/`timeWindow` for this key. */
  rateLimit?: KeyRateLimit
  /** Set by rotation: the key works until then (ms since the epoch or a Date). */
  graceEndsAt?: number | Date | null
  /** Set by rotation: the id of the key that replaced this one. */
  replacedBy?: string
}

function checkName (value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new TypeError(`API key ${what} must be 1-16 lower-case letters or digits, starting with a letter (got ${JSON.stringify(value)})`)
  }
}

// CRC-32 (IEEE 802.3, as zlib and GitHub's token checksum). zlib.crc32 is missing before Node 20.15.
const CRC_TABLE = (() => {
  const table = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c
  }
  return table
})()

export function crc32 (text: string): number {
  let crc = -1
  for (let i = 0; i < text.length; i++) crc = (CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff] as number) ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}

/** CRC32 of `body` as exactly 6 base62 digits (62^6 > 2^32). */
function checksum (body: string): string {
  let n = crc32(body)
  let out = ''
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[n % 62] + out
    n = Math.floor(n / 62)
  }
  return out
}

/** Uniform base62 characters from the CSPRNG (rejection sampling: no modulo bias). */
function randomBase62 (length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62]
    }
  }
  return out
}

/** SHA-256 of the key, hex: what you store. */
export function hashApiKey (key: string): string {
  return sha256Text(key, 'hex')
}

/** The record's lookup id for a key: non-secret, stable, 24 base16 characters (96 bits). */
export function apiKeyId (key: string): string {
  return sha256Text(ID_DOMAIN + key, 'hex').slice(0, 24)
}

/**
 * Splits a key and checks its checksum, with no lookup. Returns `undefined` for anything
 * that is not a well-formed key with a matching checksum (a typo, a truncated paste).
 */
export function parseApiKey (key: string): ParsedApiKey | undefined {
  if (typeof key !== 'string' || key.length > API_KEY_MAX_LENGTH) return undefined
  const first = key.indexOf('_')
  const second = key.indexOf('_', first + 1)
  if (first === -1 || second === -1) return undefined
  const prefix = key.slice(0, first)
  const environment = key.slice(first + 1, second)
  const tail = key.slice(second + 1)
  if (tail.length !== TAIL_LENGTH || !TAIL.test(tail) || !NAME.test(prefix) || !NAME.test(environment)) return undefined
  const body = key.slice(0, key.length - CHECKSUM_LENGTH)
  if (checksum(body) !== key.slice(key.length - CHECKSUM_LENGTH)) return undefined
  return { prefix, environment }
}

/** True when `key` has the format and a matching checksum (no lookup, no secret needed). */
export function isApiKey (key: string): boolean {
  return parseApiKey(key) !== undefined
}

function describe (key: string, prefix: string, environment: string): GeneratedApiKey {
  const secretStart = prefix.length + environment.length + 2
  return {
    key,
    id: apiKeyId(key),
    hash: hashApiKey(key),
    start: key.slice(0, secretStart + START_SECRET_CHARS),
    prefix,
    environment
  }
}

/** Makes a new key. Store `id`, `hash`, `start` (and `environment`); hand `key` to its owner once. */
export function generateApiKey (options: GenerateApiKeyOptions): GeneratedApiKey {
  if (typeof options !== 'object' || options === null) throw new TypeError('generateApiKey({ prefix, environment })')
  checkName(options.prefix, 'prefix')
  checkName(options.environment, 'environment')
  const body = `${options.prefix}_${options.environment}_${randomBase62(API_KEY_SECRET_LENGTH)}`
  return describe(body + checksum(body), options.prefix, options.environment)
}

/** Recomputes `{ key, id, hash, start, prefix, environment }` for an existing key (e.g. to import it). */
export function describeApiKey (key: string): GeneratedApiKey {
  const parsed = parseApiKey(key)
  if (parsed === undefined) throw new TypeError('not a valid API key (format or checksum)')
  return describe(key, parsed.prefix, parsed.environment)
}

export interface RotateApiKeyOptions {
  /** How long the old key keeps working (ms or `'24h'`; 0: it stops at once). */
  grace: Duration
  /** Clock, for tests and scripts. Default `Date.now`. */
  now?: () => number
}

/** The old key's side of a rotation: merge it into the old record. */
export interface RotatedFrom {
  id: string
  graceEndsAt: number
  replacedBy: string
}

export interface RotatedApiKey extends GeneratedApiKey {
  previous: RotatedFrom
}

/**
 * What `rotateApiKey` needs to know about the old key: its stored record (preferred: it shows whether
 * the key was already rotated, revoked or expired), or the key itself. `null` reads as absent (SQL).
 */
export type RotationSource = string | {
  id: string
  prefix?: string
  environment?: string
  start?: string
  expiresAt?: number | Date | null
  revoked?: boolean | null
  graceEndsAt?: number | Date | null
  replacedBy?: string | null
}

/** A record's timestamp (ms or Date); `null`/`undefined` is absent, anything else unreadable is refused. */
function recordTime (value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined
  const ms = value instanceof Date ? value.getTime() : value
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw new TypeError(`rotateApiKey: the record's ${field} is not a number of ms or a Date`)
  return ms
}

/**
 * Replaces a key without downtime: returns a new key of the same prefix and environment,
 * and `previous` ({ id, graceEndsAt, replacedBy }) to merge into the old record. The old
 * key keeps working until `graceEndsAt` (never beyond its own expiry), then is refused
 * with the log reason "key rotated, grace period over".
 *
 * A record that was already rotated (`replacedBy` or `graceEndsAt` set), is revoked or has
 * expired is refused: rotating it again would give the old key a fresh grace period. The
 * key string alone cannot show that: write `previous` with a conditional update (docs/api-keys.md).
 */
export function rotateApiKey (old: RotationSource, options: RotateApiKeyOptions): RotatedApiKey {
  const graceMs = durationMs(options?.grace, 'rotateApiKey: grace', { min: 0 })
  if (graceMs === undefined) throw new TypeError('rotateApiKey: grace is required (ms or a duration such as \'24h\'; 0 ends the old key at once)')
  let id: string
  let prefix: string | undefined
  let environment: string | undefined
  let expiresAt: number | undefined
  const now = (options.now ?? Date.now)()
  if (typeof old === 'string') {
    const described = describeApiKey(old)
    ;({ id, prefix, environment } = described)
  } else if (typeof old === 'object' && old !== null && typeof old.id === 'string') {
    // Read the way the plugin reads a record (src/methods/api-key/index.ts): any truthy `revoked` revokes.
    if (old.revoked as unknown) throw new TypeError('rotateApiKey: the key is revoked; issue a new one instead')
    if ((old.replacedBy !== undefined && old.replacedBy !== null) || recordTime(old.graceEndsAt, 'graceEndsAt') !== undefined) {
      throw new TypeError('rotateApiKey: the key was already rotated (replacedBy/graceEndsAt are set); rotate its replacement, or issue a new key')
    }
    expiresAt = recordTime(old.expiresAt, 'expiresAt')
    if (expiresAt !== undefined && now >= expiresAt) throw new TypeError('rotateApiKey: the key has expired; issue a new one instead')
    id = old.id
    // A record may keep only `start` ("ak_live_3hT9"): it carries the prefix and environment.
    const fromStart = typeof old.start === 'string' ? old.start.split('_') : []
    prefix = old.prefix ?? fromStart[0]
    environment = old.environment ?? fromStart[1]
  } else {
    throw new TypeError('rotateApiKey: pass the old key or its record ({ id, prefix, environment })')
  }
  if (prefix === undefined || environment === undefined) throw new TypeError('rotateApiKey: the record needs prefix and environment (or start)')
  const next = generateApiKey({ prefix, environment })
  const graceEnd = now + graceMs
  return {
    ...next,
    previous: { id, graceEndsAt: expiresAt === undefined ? graceEnd : Math.min(graceEnd, expiresAt), replacedBy: next.id }
  }
}

/** Constant-time check of a key against a stored hex SHA-256. A malformed stored hash throws (bad data is a server error). */
export function apiKeyMatches (key: string, storedHash: string): boolean {
  if (typeof storedHash !== 'string' || !HASH.test(storedHash)) throw new TypeError('stored API key hash must be 64 lower-case hex digits (SHA-256)')
  return timingSafeEqual(sha256(key), Buffer.from(storedHash, 'hex'))
}
