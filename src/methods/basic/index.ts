import { isUtf8 } from 'node:buffer'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { attachCredentialCache, VerifiedCredentialCache } from './credential-cache.js'
import { cacheOptions } from '../../lib/expiring-lru.js'
import type { VerifiedCredentialCacheOptions } from '../../lib/expiring-lru.js'
import { callAsync } from '../../core/callbacks.js'
import { BadRequestError, BusyError, MultiauthOptionError } from '../../core/errors.js'
import { authorizationParam, DEFAULT_MAX_CREDENTIAL_LENGTH } from '../../core/headers.js'
import {
  argon2Parameters, argon2Work, CURRENT_PARAMETERS, defaultMaxConcurrentVerifications, hashWithParameters, needsRehash,
  verifyParsed, VerificationSlots
} from './password.js'
import type { Argon2Parameters } from './password.js'
import { busy } from '../../rate-limit/index.js'
import { AuthFailure, isThenable } from '../../core/outcome.js'
import type { AuthMethod, AuthSuccess, Awaitable, Falsy, MultiauthUser } from '../../core/types.js'
import { checkBoolean, checkFunction, checkKeys, checkObject, checkPositiveInteger } from '../../core/validate.js'
import type { MethodContext } from '../context.js'


export interface BasicCredential {
  user: MultiauthUser
  /** An argon2 PHC string, as made by `hashPassword`. */
  passwordHash: string
}

export interface BasicOptions {
  /** Full control: return the user for a valid username/password, anything falsy otherwise (Flask-HTTPAuth's `verify_password`). */
  verify?: (username: string, password: string, request: FastifyRequest) => Awaitable<MultiauthUser | Falsy>
  /** Or return the stored record and let the plugin check the argon2 hash (timing-equalised for unknown users). */
  findCredential?: (username: string, request: FastifyRequest) => Awaitable<BasicCredential | Falsy>
  /**
   * With `findCredential`: called after a successful login whose hash used weaker parameters than `hashPassword`
   * now does, with the new hash and the one that was verified. Store `newHash` only where the stored hash is
   * still `oldHash` (`UPDATE … WHERE password_hash = oldHash`), so a password reset that landed in between
   * is not undone. The login does not wait for it; bounded by `callbackTimeout`, a failure or timeout is logged.
   */
  onRehash?: (user: MultiauthUser, newHash: string, oldHash: string, request: FastifyRequest) => Awaitable<void>
  /** Treat `Basic base64(<token>:)` (empty password) as a bearer token, as Flask-HTTPAuth applications' `verify_password` often does. Needs `token`. */
  allowToken?: boolean
  /** Longest Authorization header accepted, in characters (default 8192); longer is a 400. */
  maxLength?: number
  /**
   * With `findCredential`: remember successful argon2 checks for `ttl` ms (at most `max` entries),
   * so a repeated correct login costs one keyed SHA-256 instead of an argon2 run. Off by default.
   * See docs/basic.md, "Verified-credential cache".
   */
  cache?: Partial<VerifiedCredentialCacheOptions>
  /**
   * With `findCredential`: argon2 verifications run at once at most (per process); more wait in
   * arrival order for what is left of `callbackTimeout`, then get 503 `FST_MULTIAUTH_BUSY` with
   * `Retry-After`. Default: the number of cores, at most libuv's thread pool size minus one
   * (UV_THREADPOOL_SIZE, default 4). See docs/basic.md, "Cost of a login".
   */
  maxConcurrentVerifications?: number
}

export interface BasicCredentials { username: string, password: string }

const OPTION_KEYS = ['verify', 'findCredential', 'onRehash', 'allowToken', 'maxLength', 'cache', 'maxConcurrentVerifications']
// RFC 7617 §2: user-id and password MUST NOT contain control characters (Unicode Cc: C0, DEL, C1).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

const EMPTY_USERNAME = new AuthFailure('empty-username', 'empty username')
const UNKNOWN_USER = new AuthFailure('unknown-user', 'unknown user')
const WRONG_PASSWORD = new AuthFailure('wrong-password', 'wrong password')
const REFUSED = new AuthFailure('refused-by-callback', 'verify callback refused the credentials')
const EQUALISER_PASSWORD = 'fastify-multiauth timing equaliser'

function verified (user: MultiauthUser | Falsy): AuthSuccess | AuthFailure {
  return user ? { user, method: 'basic' } : REFUSED
}

/**
 * Decodes `token68` of a Basic Authorization header strictly (RFC 7617). The bytes are read as
 * UTF-8 when they are valid UTF-8 (§2.1, the charset="UTF-8" the challenge announces), else as
 * ISO-8859-1 (Appendix B: what clients did before charset existed, and what Python `requests`
 * still sends for a `str` password). A Latin-1 byte sequence that is also valid UTF-8 is read
 * as UTF-8 — the one ambiguity, which §2.1 settles that way. Control characters are refused
 * either way.
 */
export function decodeBasicCredentials (param: string): BasicCredentials {
  const bytes = Buffer.from(param, 'base64')
  // Node's decoder is lenient (skips junk, ignores padding); only the canonical encoding is accepted.
  if (bytes.length === 0 || bytes.toString('base64') !== param) throw new BadRequestError('invalid base64')
  // No BOM stripping, no replacement characters: the decode is the exact inverse of the bytes.
  const decoded = bytes.toString(isUtf8(bytes) ? 'utf8' : 'latin1')
  const colon = decoded.indexOf(':')
  if (colon === -1) throw new BadRequestError('no colon between user-id and password')
  if (CONTROL.test(decoded)) throw new BadRequestError('control character in credentials')
  // The first colon splits: a password may contain colons, a user-id may not (RFC 7617 §2).
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/** `<token>:` credentials, which `allowToken` hands to the token method. */
function isTokenLogin (credentials: unknown): boolean {
  const { username, password } = (credentials ?? {}) as Partial<BasicCredentials>
  return password === '' && username !== undefined && username !== ''
}

export function createBasicMethod (raw: unknown, ctx: MethodContext): AuthMethod {
  const options = checkObject(raw, 'basic') as BasicOptions
  checkKeys(options as Record<string, unknown>, OPTION_KEYS, 'basic')
  checkFunction(options.verify, 'basic.verify', false)
  checkFunction(options.findCredential, 'basic.findCredential', false)
  checkFunction(options.onRehash, 'basic.onRehash', false)
  checkBoolean(options.allowToken, 'basic.allowToken')
  checkPositiveInteger(options.maxLength, 'basic.maxLength')
  checkPositiveInteger(options.maxConcurrentVerifications, 'basic.maxConcurrentVerifications')
  if ((options.verify === undefined) === (options.findCredential === undefined)) {
    throw new MultiauthOptionError('basic needs exactly one of basic.verify(username, password, request) or basic.findCredential(username, request)')
  }
  if (options.onRehash !== undefined && options.findCredential === undefined) {
    throw new MultiauthOptionError('basic.onRehash only applies with basic.findCredential')
  }
  if (options.maxConcurrentVerifications !== undefined && options.findCredential === undefined) {
    throw new MultiauthOptionError('basic.maxConcurrentVerifications only applies with basic.findCredential (with basic.verify the password check is yours)')
  }
  let cache: VerifiedCredentialCache | undefined
  if (options.cache !== undefined) {
    const { max, ttl } = cacheOptions(options.cache, 'basic.cache')
    if (options.findCredential === undefined) throw new MultiauthOptionError('basic.cache only applies with basic.findCredential')
    cache = new VerifiedCredentialCache(max, ttl)
  }
  const { verify: verifyCallback, findCredential, onRehash, allowToken = false } = options
  const maxLength = options.maxLength ?? DEFAULT_MAX_CREDENTIAL_LENGTH
  const slots = new VerificationSlots(options.maxConcurrentVerifications ?? defaultMaxConcurrentVerifications())
  const timeoutMs = ctx.timeoutMs ?? 0
  /**
   * Timing equaliser: a hash of our own with the costliest argon2 parameters seen so far
   * (hashPassword's at first, then any costlier set a record uses). An unknown user is
   * verified against it, and a record with cheaper parameters is verified alongside it, so
   * every refusal costs what the costliest user in use costs: old-parameter hashes waiting
   * for `onRehash` do not tell which usernames exist.
   */
  let equaliser = { params: CURRENT_PARAMETERS, work: argon2Work(CURRENT_PARAMETERS), hash: '' }
  /** Work of the equaliser being made in the background (one at a time), 0 when none. */
  let preparing = 0
  let log: FastifyBaseLogger | undefined

  function learn (params: Argon2Parameters, work: number): void {
    if (work <= equaliser.work || work <= preparing) return
    preparing = work
    hashWithParameters(EQUALISER_PASSWORD, params).then((hash) => {
      if (work > equaliser.work) equaliser = { params, work, hash }
    }, (err: unknown) => {
      log?.error({ err }, 'multiauth: could not make the argon2 timing equaliser for a costlier parameter set')
    }).finally(() => {
      if (preparing === work) preparing = 0
    })
  }

  /**
   * Waits for an argon2 slot, for what is left of `callbackTimeout` since findCredential was called
   * (`started`; the whole of it after a synchronous findCredential). After a synchronous findCredential
   * this timer is set before the guard's own and has the same duration, so it fires first
   * (Node runs timers of one duration in the order they were set): the answer is our 503 with
   * Retry-After. After an asynchronous one the guard's timeout may answer first (its 503).
   */
  async function takeSlot (reply: FastifyReply, started: number | undefined): Promise<void> {
    const waitMs = timeoutMs === 0 ? Infinity : timeoutMs - (started === undefined ? 0 : Math.ceil(performance.now() - started))
    if (!(await slots.acquire(waitMs))) throw busy(reply, timeoutMs)
    if (reply.sent) {
      // Answered meanwhile (the guard's timeout): no argon2 run for nobody; the error goes nowhere.
      slots.release()
      throw new BusyError(String(Math.ceil(timeoutMs / 1000)))
    }
  }

  /** `findCredential`, without a promise when it answers synchronously and the cache already holds the login. */
  function checkStoredPassword (username: string, password: string, request: FastifyRequest, reply: FastifyReply): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    const record = (findCredential as NonNullable<BasicOptions['findCredential']>)(username, request)
    if (!isThenable(record)) return checkRecord(username, password, record, request, reply, undefined)
    const started = performance.now()
    return Promise.resolve(record).then((value) => checkRecord(username, password, value, request, reply, started))
  }

  function checkRecord (username: string, password: string, record: BasicCredential | Falsy, request: FastifyRequest, reply: FastifyReply, started: number | undefined): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    // A record without a user is refused like an unknown user: a falsy user never passes.
    if (!record || !record.user) return refuseUnknownUser(password, reply, started)
    // A hit needs the hash findCredential returns now, so a changed hash is never served from the cache.
    const cacheKey = cache?.key(username, password)
    if (cacheKey !== undefined && (cache as VerifiedCredentialCache).has(cacheKey, record.passwordHash)) {
      return { user: record.user, method: 'basic' }
    }
    return checkPassword(username, password, record, cacheKey, request, reply, started)
  }

  async function refuseUnknownUser (password: string, reply: FastifyReply, started: number | undefined): Promise<AuthFailure> {
    await takeSlot(reply, started)
    try {
      await verifyParsed(equaliser.hash, equaliser.params, password)
    } finally {
      slots.release()
    }
    return UNKNOWN_USER
  }

  async function checkPassword (username: string, password: string, record: BasicCredential, cacheKey: string | undefined, request: FastifyRequest, reply: FastifyReply, started: number | undefined): Promise<AuthSuccess | AuthFailure> {
    // Bad data (not argon2, or absurd parameters) is a server error before any work is done.
    const params = argon2Parameters(record.passwordHash)
    const work = argon2Work(params)
    learn(params, work)
    let newHash: string | undefined
    await takeSlot(reply, started)
    try {
      const check = verifyParsed(record.passwordHash, params, password)
      // Cheaper than the costliest set in use: the equaliser runs alongside, so a wrong password takes as long as an unknown user.
      const ok = work < equaliser.work
        ? (await Promise.all([check, verifyParsed(equaliser.hash, equaliser.params, password)]))[0]
        : await check
      if (!ok) return WRONG_PASSWORD
      if (onRehash !== undefined && needsRehash(record.passwordHash)) newHash = await hashWithParameters(password, CURRENT_PARAMETERS)
    } finally {
      slots.release()
    }
    if (cacheKey !== undefined) (cache as VerifiedCredentialCache).add(cacheKey, username, record.passwordHash)
    if (newHash !== undefined) {
      // Outside the argon2 slot, and not awaited: the login succeeded and does not wait for the
      // application's write. Bounded by `callbackTimeout`; a failure or a timeout is logged, and the
      // upgrade is retried at the next login. The verified hash lets the write be conditional.
      callAsync(ctx.timeoutMs, 'basic.onRehash', request, onRehash as NonNullable<BasicOptions['onRehash']>, record.user, newHash, record.passwordHash, request)
        .catch((err: unknown) => { request.log.error({ err }, 'multiauth: basic.onRehash failed') })
    }
    return { user: record.user, method: 'basic' }
  }

  function callVerify (username: string, password: string, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    // No await when the callback answers synchronously: the guard then needs no promise.
    const user = (verifyCallback as NonNullable<BasicOptions['verify']>)(username, password, request)
    return isThenable(user) ? Promise.resolve(user).then(verified) : verified(user)
  }

  const check = findCredential !== undefined ? checkStoredPassword : callVerify
  const callback = findCredential !== undefined ? 'basic.findCredential' : 'basic.verify'

  return {
    name: 'basic',
    challenge: `Basic realm="${ctx.realm}", charset="UTF-8"`,
    extract (request) {
      const param = authorizationParam(request, 'basic', maxLength)
      return param === undefined ? undefined : decodeBasicCredentials(param)
    },
    verify ({ username, password }: BasicCredentials, request, reply) {
      if (allowToken && password === '' && username !== '') {
        // An empty password means the user-id is a token.
        const token = ctx.methods.get('token')
        if (token === undefined) throw new MultiauthOptionError('basic.allowToken needs the token option')
        return token.verify(username, request, undefined as never)
      }
      if (username === '') return EMPTY_USERNAME
      return check(username, password, request, reply)
    },
    // A token sent as the user-id (allowToken) is verified by the token method: its findUser runs.
    callbackOf: (credentials) => allowToken && isTokenLogin(credentials) ? 'token.findUser' : callback,
    async setup (app) {
      attachCredentialCache(app, cache)
      if (allowToken && !ctx.methods.has('token')) {
        throw new MultiauthOptionError('basic.allowToken needs the token option to be configured')
      }
      log = app.log
      if (findCredential !== undefined) equaliser = { ...equaliser, hash: await hashWithParameters(EQUALISER_PASSWORD, CURRENT_PARAMETERS) }
    },
    securitySchemes: () => ({
      basic: allowToken
        ? { type: 'http', scheme: 'basic', description: 'HTTP Basic; an access token as the user name with an empty password also works' }
        : { type: 'http', scheme: 'basic' }
    })
  }
}
