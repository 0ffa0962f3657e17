import { isUtf8 } from 'node:buffer'
import type { FastifyRequest } from 'fastify'
import { attachCredentialCache, VerifiedCredentialCache } from '../credential-cache.js'
import { cacheOptions } from '../expiring-lru.js'
import type { VerifiedCredentialCacheOptions } from '../expiring-lru.js'
import { callAsync } from '../callbacks.js'
import { BadRequestError, MultiauthOptionError } from '../errors.js'
import { authorizationParam, DEFAULT_MAX_CREDENTIAL_LENGTH } from '../headers.js'
import { hashPassword, needsRehash, verifyPassword } from '../password.js'
import { AuthFailure, isThenable } from '../types.js'
import type { AuthMethod, AuthSuccess, Awaitable, Falsy, MultiauthUser } from '../types.js'
import { checkBoolean, checkFunction, checkKeys, checkObject, checkPositiveInteger } from '../validate.js'
import type { MethodContext } from './context.js'


export interface BasicUserRecord {
  user: MultiauthUser
  /** An argon2 PHC string, as made by `hashPassword`. */
  passwordHash: string
}

export interface BasicOptions {
  /** Full control: return the user for a valid username/password, anything falsy otherwise (Flask-HTTPAuth's `verify_password`). */
  verify?: (username: string, password: string, request: FastifyRequest) => Awaitable<MultiauthUser | Falsy>
  /** Or return the stored record and let the plugin check the argon2 hash (timing-equalised for unknown users). */
  findUser?: (username: string, request: FastifyRequest) => Awaitable<BasicUserRecord | Falsy>
  /**
   * With `findUser`: called after a successful login whose hash used weaker parameters than `hashPassword`
   * now does, with the new hash and the one that was verified. Store `newHash` only where the stored hash is
   * still `oldHash` (`UPDATE … WHERE password_hash = oldHash`), so a password reset that landed in between
   * is not undone. The login does not wait for it; bounded by `timeout`, a failure or timeout is logged.
   */
  onRehash?: (user: MultiauthUser, newHash: string, oldHash: string, request: FastifyRequest) => Awaitable<void>
  /** Treat `Basic base64(<token>:)` (empty password) as a bearer token, as seed 2's `verify_password` does. Needs `token`. */
  allowToken?: boolean
  /** Longest Authorization header accepted, in characters (default 8192); longer is a 400. */
  maxLength?: number
  /**
   * With `findUser`: remember successful argon2 checks for `ttl` ms (at most `max` entries),
   * so a repeated correct login costs an HMAC instead of an argon2 run. Off by default.
   * See docs/basic.md, "Verified-credential cache".
   */
  cache?: Partial<VerifiedCredentialCacheOptions>
}

export interface BasicCredentials { username: string, password: string }

const OPTION_KEYS = ['verify', 'findUser', 'onRehash', 'allowToken', 'maxLength', 'cache']
// RFC 7617 §2: user-id and password MUST NOT contain control characters (Unicode Cc: C0, DEL, C1).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

const EMPTY_USERNAME = new AuthFailure('empty username')
const UNKNOWN_USER = new AuthFailure('unknown user')
const WRONG_PASSWORD = new AuthFailure('wrong password')
const REFUSED = new AuthFailure('verify callback refused the credentials')

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

export function createBasicMethod (raw: unknown, ctx: MethodContext): AuthMethod {
  const options = checkObject(raw, 'basic') as BasicOptions
  checkKeys(options as Record<string, unknown>, OPTION_KEYS, 'basic')
  checkFunction(options.verify, 'basic.verify', false)
  checkFunction(options.findUser, 'basic.findUser', false)
  checkFunction(options.onRehash, 'basic.onRehash', false)
  checkBoolean(options.allowToken, 'basic.allowToken')
  checkPositiveInteger(options.maxLength, 'basic.maxLength')
  if ((options.verify === undefined) === (options.findUser === undefined)) {
    throw new MultiauthOptionError('basic needs exactly one of basic.verify(username, password, request) or basic.findUser(username, request)')
  }
  if (options.onRehash !== undefined && options.findUser === undefined) {
    throw new MultiauthOptionError('basic.onRehash only applies with basic.findUser')
  }
  let cache: VerifiedCredentialCache | undefined
  if (options.cache !== undefined) {
    const { max, ttl } = cacheOptions(options.cache, 'basic.cache')
    if (options.findUser === undefined) throw new MultiauthOptionError('basic.cache only applies with basic.findUser')
    cache = new VerifiedCredentialCache(max, ttl)
  }
  const { verify: verifyCallback, findUser, onRehash, allowToken = false } = options
  const maxLength = options.maxLength ?? DEFAULT_MAX_CREDENTIAL_LENGTH
  // Verified against for unknown users, so they cost the same argon2 run as a wrong password.
  let dummyHash = ''

  /** `findUser`, without a promise when it answers synchronously and the cache already holds the login. */
  function checkStoredPassword (username: string, password: string, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    const record = (findUser as NonNullable<BasicOptions['findUser']>)(username, request)
    return isThenable(record)
      ? Promise.resolve(record).then((value) => checkRecord(username, password, value, request))
      : checkRecord(username, password, record, request)
  }

  function checkRecord (username: string, password: string, record: BasicUserRecord | Falsy, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    // A record without a user is refused like an unknown user: a falsy user never passes.
    if (!record || !record.user) return refuseUnknownUser(password)
    // A hit needs the hash findUser returns now, so a changed hash is never served from the cache.
    const cacheKey = cache?.key(username, password)
    if (cacheKey !== undefined && (cache as VerifiedCredentialCache).has(cacheKey, record.passwordHash)) {
      return { user: record.user, method: 'basic' }
    }
    return checkPassword(username, password, record, cacheKey, request)
  }

  async function refuseUnknownUser (password: string): Promise<AuthFailure> {
    await verifyPassword(dummyHash, password)
    return UNKNOWN_USER
  }

  async function checkPassword (username: string, password: string, record: BasicUserRecord, cacheKey: string | undefined, request: FastifyRequest): Promise<AuthSuccess | AuthFailure> {
    if (!(await verifyPassword(record.passwordHash, password))) return WRONG_PASSWORD
    if (cacheKey !== undefined) (cache as VerifiedCredentialCache).add(cacheKey, username, record.passwordHash)
    if (onRehash !== undefined && needsRehash(record.passwordHash)) {
      const newHash = await hashPassword(password)
      // Not awaited: the login succeeded and does not wait for the application's write. Bounded by
      // `timeout`; a failure or a timeout is logged, and the upgrade is retried at the next login.
      callAsync(ctx.timeoutMs, onRehash, record.user, newHash, record.passwordHash, request)
        .catch((err: unknown) => { request.log.error({ err }, 'multiauth: basic.onRehash failed') })
    }
    return { user: record.user, method: 'basic' }
  }

  function callVerify (username: string, password: string, request: FastifyRequest): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure> {
    // No await when the callback answers synchronously: the guard then needs no promise.
    const user = (verifyCallback as NonNullable<BasicOptions['verify']>)(username, password, request)
    return isThenable(user) ? Promise.resolve(user).then(verified) : verified(user)
  }

  const check = findUser !== undefined ? checkStoredPassword : callVerify

  return {
    name: 'basic',
    challenge: `Basic realm="${ctx.realm}", charset="UTF-8"`,
    extract (request) {
      const param = authorizationParam(request, 'basic', maxLength)
      return param === undefined ? undefined : decodeBasicCredentials(param)
    },
    verify ({ username, password }: BasicCredentials, request) {
      if (allowToken && password === '' && username !== '') {
        // Seed 2: an empty password means the user-id is a token.
        const token = ctx.methods.get('token')
        if (token === undefined) throw new MultiauthOptionError('basic.allowToken needs the token option')
        return token.verify(username, request, undefined as never)
      }
      if (username === '') return EMPTY_USERNAME
      return check(username, password, request)
    },
    async setup (app) {
      if (cache !== undefined) attachCredentialCache(app, cache)
      if (allowToken && !ctx.methods.has('token')) {
        throw new MultiauthOptionError('basic.allowToken needs the token option to be configured')
      }
      if (findUser !== undefined) dummyHash = await hashPassword('fastify-multiauth timing equaliser')
    },
    securitySchemes: () => ({
      basic: allowToken
        ? { type: 'http', scheme: 'basic', description: 'HTTP Basic; an access token as the user name with an empty password also works' }
        : { type: 'http', scheme: 'basic' }
    })
  }
}
