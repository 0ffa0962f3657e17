import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { apiKeyId, apiKeyMatches, parseApiKey } from './key-format.js'
import type { ApiKeyRecord } from './key-format.js'
import { createUsageCounter, prepareUsage } from './usage.js'
import type { ApiKeyUsageOptions, UsageCounter } from './usage.js'
import { BadRequestError, MultiauthOptionError } from '../../core/errors.js'
import { events, requestFields, userIdOf } from '../../core/events.js'
import { assertSingleHeader, DEFAULT_MAX_CREDENTIAL_LENGTH } from '../../core/headers.js'
import { redactCredentialsInLogs } from '../../integrations/log-redaction.js'
import { AuthFailure, isThenable } from '../../core/outcome.js'
import type { AuthMethod, AuthSuccess, Awaitable, Falsy, MultiauthUser } from '../../core/types.js'
import { checkFunction, checkKeys, checkObject, checkPositiveInteger, checkQuotable, checkString } from '../../core/validate.js'
import type { MethodContext } from '../context.js'


export interface ApiKeyOptions {
  /** Full control: return the user (or client) the key belongs to, anything falsy otherwise. */
  verify?: (key: string, request: FastifyRequest) => Awaitable<MultiauthUser | Falsy>
  /**
   * Or, for keys made by `generateApiKey`: return the stored record for a key id (falsy when
   * there is none). The plugin checks format and checksum before calling it, then the hash
   * (constant time), revocation, expiry, rotation grace and environment.
   */
  findKey?: (id: string, request: FastifyRequest) => Awaitable<ApiKeyRecord | Falsy>
  /** With `findKey`: the key prefix(es) this service issues; other prefixes are refused before findKey. */
  prefix?: string | readonly string[]
  /** With `findKey`: the environment(s) this deployment accepts (e.g. `"live"`); other keys are refused before findKey. Default: any. */
  environment?: string | readonly string[]
  /** With `findKey`: the clock for expiry and rotation grace, in ms since the epoch (tests). Default `Date.now`. */
  now?: () => number
  /** Header carrying the key. Default `X-API-Key`. */
  header?: string
  /**
   * Also accept the key from the query string: `true` for `api_key` (the common name), or a parameter
   * name. Off by default: URLs end up in logs, proxies and browser history.
   */
  query?: boolean | string
  /** Longest key accepted, in characters (default 8192); longer is a 400. */
  maxLength?: number
  /**
   * With `findKey`: count each key's requests and write the count and the last use at most once
   * per key per `interval` (per instance) to the `store` option (read it with `readApiKeyUsage`)
   * and/or to `onUsed`. `true`: a one-minute interval, to the store. Off by default.
   */
  usage?: boolean | ApiKeyUsageOptions
}

export type { ApiKeyUsage, ApiKeyUsageOptions, ApiKeyUsageTotals } from './usage.js'

const OPTION_KEYS = ['verify', 'findKey', 'prefix', 'environment', 'now', 'header', 'query', 'maxLength', 'usage']
// Keys are printable; a control character (possible through %00 in a query) is malformed.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/
const REFUSED = new AuthFailure('refused-by-callback', 'verify callback refused the key')
// Distinct log reasons, one response: the client never learns which check failed.
const MALFORMED = new AuthFailure('malformed', 'not a well-formed key (format or checksum)')
const WRONG_PREFIX = new AuthFailure('wrong-prefix', 'key prefix not accepted')
const WRONG_ENVIRONMENT = new AuthFailure('wrong-environment', 'key of the wrong environment')
const UNKNOWN_KEY = new AuthFailure('unknown-key', 'unknown key')
const REVOKED = new AuthFailure('revoked', 'key revoked')
const EXPIRED = new AuthFailure('expired', 'key expired')
const GRACE_OVER = new AuthFailure('rotated', 'key rotated, grace period over')

function toList (value: string | readonly string[] | undefined, path: string): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0 || !list.every((v) => typeof v === 'string' && v.length > 0)) {
    throw new MultiauthOptionError(`${path} must be a non-empty string or array of strings`)
  }
  return new Set(list)
}

/** A timestamp from a record (ms or Date); anything else is bad data, a server error. */
function timestamp (value: unknown, field: string): number {
  const ms = value instanceof Date ? value.getTime() : value
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw new TypeError(`apiKey.findKey returned a record whose ${field} is not a number of ms or a Date`)
  return ms
}

/**
 * Scopes are compared as whole strings of an array, never as a substring: a string such as
 * `"orders:read orders:write-own"` (a text column) would otherwise grant `orders:write` through
 * `String.prototype.includes`. Anything but an array of strings is bad data, a server error.
 */
function recordScopes (value: unknown): readonly string[] | undefined {
  if (value === undefined || value === null) return undefined
  if (Array.isArray(value) && value.every((scope) => typeof scope === 'string')) return value
  throw new TypeError('apiKey.findKey returned a record whose scopes is not an array of strings')
}

/** A malformed budget must not slip through as "no limit": bad data is a server error. */
function checkRecordRateLimit (value: unknown): void {
  const { max, timeWindow } = (value ?? {}) as { max?: unknown, timeWindow?: unknown }
  if (!Number.isSafeInteger(max) || (max as number) < 1 || (timeWindow !== undefined && (!Number.isSafeInteger(timeWindow) || (timeWindow as number) < 1))) {
    throw new TypeError('apiKey.findKey returned a record whose rateLimit is not { max: positive integer, timeWindow?: positive integer ms }')
  }
}

/** The `findKey` flow: everything that can be checked without the database runs first. */
function findKeyVerifier (options: ApiKeyOptions, usage: UsageCounter | undefined): (key: string, request: FastifyRequest) => AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
  const findKey = options.findKey as NonNullable<ApiKeyOptions['findKey']>
  const prefixes = toList(options.prefix, 'apiKey.prefix')
  const environments = toList(options.environment, 'apiKey.environment')
  const now = options.now ?? Date.now

  function checkRecord (key: string, id: string, environment: string, record: ApiKeyRecord<MultiauthUser> | Falsy, request: FastifyRequest): AuthSuccess | AuthFailure {
    if (!record) return UNKNOWN_KEY
    if (typeof record !== 'object' || record.user === undefined || record.user === null) {
      throw new TypeError('apiKey.findKey must return { user, hash, ... } or a falsy value')
    }
    if (!apiKeyMatches(key, record.hash)) return UNKNOWN_KEY
    // Records come from SQL and JSON (`revoked: 1`, `'t'`, `'false'`): any truthy value revokes, the safe reading.
    if (record.revoked as unknown) return REVOKED
    const t = now()
    // A NULL column (SQL) is an absent field: no expiry, no rotation.
    if (record.expiresAt !== undefined && record.expiresAt !== null && t >= timestamp(record.expiresAt, 'expiresAt')) return EXPIRED
    if (record.graceEndsAt !== undefined && record.graceEndsAt !== null && t >= timestamp(record.graceEndsAt, 'graceEndsAt')) return GRACE_OVER
    if (record.environment !== undefined && record.environment !== environment) return WRONG_ENVIRONMENT
    if (record.rateLimit !== undefined) checkRecordRateLimit(record.rateLimit)
    const scopes = recordScopes(record.scopes)
    // The key passed every check: it was used, whatever roles, scopes or the per-key budget then say of the request.
    usage?.count(id, t)
    if (events['api-key:used'].hasSubscribers) events['api-key:used'].publish({ ...requestFields(request), keyId: id, environment, userId: userIdOf(record.user) })
    return { user: record.user, method: 'apiKey', keyId: id, scopes, rateLimit: record.rateLimit }
  }

  return function verifyByLookup (key, request) {
    const parsed = parseApiKey(key)
    if (parsed === undefined) return MALFORMED
    if (prefixes !== undefined && !prefixes.has(parsed.prefix)) return WRONG_PREFIX
    if (environments !== undefined && !environments.has(parsed.environment)) return WRONG_ENVIRONMENT
    const id = apiKeyId(key)
    const record = findKey(id, request)
    // No promise when findKey answers synchronously (an in-memory table or cache): the guard then needs none either.
    return isThenable(record)
      ? Promise.resolve(record).then((value) => checkRecord(key, id, parsed.environment, value, request))
      : checkRecord(key, id, parsed.environment, record, request)
  }
}

function outcome (user: MultiauthUser | Falsy): AuthSuccess | AuthFailure {
  return user ? { user, method: 'apiKey' } : REFUSED
}

export { redactQueryParam } from '../../integrations/log-redaction.js'

export function createApiKeyMethod (raw: unknown, ctx: MethodContext): AuthMethod {
  const options = checkObject(raw, 'apiKey') as unknown as ApiKeyOptions
  checkKeys(options as unknown as Record<string, unknown>, OPTION_KEYS, 'apiKey')
  checkFunction(options.verify, 'apiKey.verify', false)
  checkFunction(options.findKey, 'apiKey.findKey', false)
  checkFunction(options.now, 'apiKey.now', false)
  if ((options.verify === undefined) === (options.findKey === undefined)) {
    throw new MultiauthOptionError('apiKey needs exactly one of apiKey.verify(key, request) or apiKey.findKey(id, request)')
  }
  if (options.findKey === undefined && (options.prefix !== undefined || options.environment !== undefined || options.now !== undefined)) {
    throw new MultiauthOptionError('apiKey.prefix, apiKey.environment and apiKey.now apply only with apiKey.findKey')
  }
  checkString(options.header, 'apiKey.header', false)
  checkPositiveInteger(options.maxLength, 'apiKey.maxLength')
  if (options.query !== undefined && typeof options.query !== 'boolean') checkString(options.query, 'apiKey.query')
  const headerLabel = options.header ?? 'X-API-Key'
  checkQuotable(headerLabel, 'apiKey.header')
  const header = headerLabel.toLowerCase()
  if (header === 'authorization' || header === 'cookie') {
    throw new MultiauthOptionError(`apiKey.header cannot be "${headerLabel}"`)
  }
  const queryName = options.query === true ? 'api_key' : (options.query || undefined)
  const maxLength = options.maxLength ?? DEFAULT_MAX_CREDENTIAL_LENGTH
  const { verify } = options
  /** The application's logger for failed usage writes, once `setup` has run. */
  let log: FastifyBaseLogger | undefined
  const preparedUsage = prepareUsage(options.usage, { findKey: options.findKey !== undefined, store: ctx.store, applicationStore: ctx.applicationStore === true })
  const usage = preparedUsage === undefined ? undefined : createUsageCounter(preparedUsage, ctx.timeoutMs, () => log)
  const check = options.findKey !== undefined
    ? findKeyVerifier(options, usage)
    : (key: string, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> => {
      // No await when the callback answers synchronously (an in-memory table): the guard then needs no promise.
      const user = (verify as NonNullable<ApiKeyOptions['verify']>)(key, request)
      return isThenable(user) ? Promise.resolve(user).then(outcome) : outcome(user)
    }

  function checkKey (key: string, where: string): string {
    if (key.length === 0) throw new BadRequestError(`empty API key in ${where}`)
    if (key.length > maxLength) throw new BadRequestError(`API key in ${where} too long`)
    if (CONTROL.test(key)) throw new BadRequestError(`control character in API key (${where})`)
    return key
  }

  function extract (request: FastifyRequest): string | undefined {
    const fromHeader = request.headers[header]
    const fromQuery = queryName === undefined ? undefined : (request.query as Record<string, unknown> | undefined)?.[queryName]
    if (fromHeader === undefined) {
      if (fromQuery === undefined) return undefined
      if (typeof fromQuery !== 'string') throw new BadRequestError(`repeated ${queryName as string} query parameter`)
      return checkKey(fromQuery, 'query')
    }
    if (fromQuery !== undefined) throw new BadRequestError('API key in both the header and the query string')
    if (typeof fromHeader !== 'string') throw new BadRequestError(`repeated ${headerLabel} header`)
    assertSingleHeader(request, header)
    return checkKey(fromHeader, 'header')
  }

  const callback = options.findKey !== undefined ? 'apiKey.findKey' : 'apiKey.verify'

  return {
    name: 'apiKey',
    challenge: `ApiKey realm="${ctx.realm}", header="${headerLabel}"`,
    extract,
    verify: check,
    callbackOf: () => callback,
    securitySchemes: () => ({
      apiKey: { type: 'apiKey', in: 'header', name: headerLabel },
      ...(queryName === undefined ? {} : { apiKeyQuery: { type: 'apiKey', in: 'query', name: queryName } as const })
    }),
    setup (app) {
      // The key never reaches the logs: the query parameter is dropped from every logged URL and
      // message, the header from any logged headers (src/integrations/log-redaction.ts).
      redactCredentialsInLogs(app, { query: queryName, header })
      log = app.log
      // After the store's own close hook was added (onClose hooks run last-added first): the counts reach the store before it closes.
      if (usage !== undefined) app.addHook('onClose', async () => { await usage.close() })
    }
  }
}
