import type { FastifyRequest } from 'fastify'
import { BadRequestError, MultiauthOptionError } from '../errors.js'
import { assertSingleHeader, DEFAULT_MAX_CREDENTIAL_LENGTH } from '../headers.js'
import { AuthFailure, isThenable } from '../types.js'
import type { AuthMethod, AuthSuccess, MultiauthUser } from '../types.js'
import { checkFunction, checkKeys, checkObject, checkPositiveInteger, checkQuotable, checkString } from '../validate.js'
import type { MethodContext } from './context.js'

type Falsy = null | undefined | false | 0 | ''
type Awaitable<T> = T | Promise<T>

export interface ApiKeyOptions {
  /** Return the user (or client) the key belongs to, anything falsy otherwise. */
  verify: (key: string, request: FastifyRequest) => Awaitable<MultiauthUser | Falsy>
  /** Header carrying the key. Default `X-API-Key`. */
  header?: string
  /**
   * Also accept the key from the query string: `true` for `api_key` (seed 1), or a parameter
   * name. Off by default: URLs end up in logs, proxies and browser history.
   */
  query?: boolean | string
  /** Longest key accepted, in characters (default 8192); longer is a 400. */
  maxLength?: number
}

const OPTION_KEYS = ['verify', 'header', 'query', 'maxLength']
// Keys are printable; a control character (possible through %00 in a query) is malformed.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/
const REFUSED = new AuthFailure('verify callback refused the key')

function outcome (user: MultiauthUser | Falsy): AuthSuccess | AuthFailure {
  return user ? { user, method: 'apiKey' } : REFUSED
}

/** Removes `name` from the query of a URL, for logs. Only runs when a line is logged. */
export function redactQueryParam (url: string, name: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const kept = url.slice(q + 1).split('&').filter((pair) => {
    const eq = pair.indexOf('=')
    const key = eq === -1 ? pair : pair.slice(0, eq)
    try {
      return decodeURIComponent(key.replace(/\+/g, ' ')) !== name
    } catch {
      return key !== name
    }
  })
  return kept.length === 0 ? url.slice(0, q) : `${url.slice(0, q)}?${kept.join('&')}`
}

export function createApiKeyMethod (raw: unknown, ctx: MethodContext): AuthMethod {
  const options = checkObject(raw, 'apiKey') as unknown as ApiKeyOptions
  checkKeys(options as unknown as Record<string, unknown>, OPTION_KEYS, 'apiKey')
  checkFunction(options.verify, 'apiKey.verify')
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

  return {
    name: 'apiKey',
    challenge: `ApiKey realm="${ctx.realm}", header="${headerLabel}"`,
    extract,
    verify (key: string, request) {
      // No await when the callback answers synchronously (an in-memory table): the guard then needs no promise.
      const user = verify(key, request)
      return isThenable(user) ? Promise.resolve(user).then(outcome) : outcome(user)
    },
    setup (app) {
      if (queryName === undefined) return
      // Keep the key out of access logs: every route registered after the plugin logs
      // its URL without the parameter (design: "the plugin's request serializer drops it").
      app.addHook('onRoute', (route) => {
        const serializers = route.logSerializers ?? {}
        if (serializers.req !== undefined) return
        route.logSerializers = {
          ...serializers,
          req (req: FastifyRequest['raw'] & { ip?: string, socket?: { remotePort?: number } }) {
            return {
              method: req.method,
              url: redactQueryParam(req.url ?? '', queryName),
              host: req.headers?.host,
              remoteAddress: req.ip ?? req.socket?.remoteAddress,
              remotePort: req.socket?.remotePort
            }
          }
        }
      })
    }
  }
}
