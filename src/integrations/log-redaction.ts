// Keeps credentials out of Fastify's logs: query parameters that carry one (`access_token`,
// `api_key`, the configured `apiKey.query`) and credential headers (`Authorization`, `Cookie`,
// `X-API-Key`, the configured `apiKey.header`, ...).
//
// Every request logger Fastify makes is a child of the one root logger (`app.log`), and pino
// children take their serializers from it when they are made, per request. So the plugin wraps
// the root logger's own `req`, `res`, `err` and message serializers, once, at registration: that
// covers every route whatever the order it was registered in (before the plugin, after it, in
// any encapsulated context), the 404 handler (its "incoming request" line and its
// "Route GET:/x?… not found" message) and Fastify's error lines. A route or context given its
// own `logSerializers` replaces the root's for those names; routes registered after the plugin
// get theirs wrapped too (`onRoute`). `Symbol.for('pino.serializers')` is pino's public symbol
// for this (Fastify reads it the same way); a logger that is not pino cannot be wrapped, and
// the plugin says so in the log at registration.
import type { FastifyInstance, RouteOptions } from 'fastify'

type Serializer = (value: any) => unknown
type Serializers = Record<string, Serializer | undefined>

const SERIALIZERS = Symbol.for('pino.serializers')
const WRAPPED = Symbol('fastify-multiauth.redacting')
export const REDACTED = '[Redacted]'
/** Free-text fields of a serializer's output (an error's). */
const TEXT_FIELDS = ['message', 'stack']

/** Query parameters that carry a credential wherever they appear: RFC 6750 §2.3's bearer token, the customary `api_key`. */
const QUERY_PARAMS = ['access_token', 'api_key']
/** Request and response headers that carry a credential (lower-case). */
const HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']

interface Redaction { readonly query: Set<string>, readonly headers: Set<string> }
const byLogger = new WeakMap<object, Redaction>()
/** Instances (plugin scopes) that already have the `onRoute` hook. */
const hooked = new WeakSet<FastifyInstance>()

function decodedKey (key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '))
  } catch {
    return key
  }
}

/** Whether the query (after `q`) may hold one of `names`: a plain substring test, unless an encoded name could hide one. */
function mayName (url: string, q: number, names: ReadonlySet<string>): boolean {
  if (url.includes('%', q) || url.includes('+', q)) return true
  for (const name of names) if (url.includes(name, q)) return true
  return false
}

/**
 * Removes the parameters named in `names` from the query of `url`, compared as Fastify's query
 * parser reads them (percent-decoded, `+` as space). Only called for a logged line whose URL
 * has a `?`.
 */
export function redactQueryParams (url: string, names: ReadonlySet<string>): string {
  const q = url.indexOf('?')
  if (q === -1 || !mayName(url, q, names)) return url
  const kept = url.slice(q + 1).split('&').filter((pair) => {
    const eq = pair.indexOf('=')
    return !names.has(decodedKey(eq === -1 ? pair : pair.slice(0, eq)))
  })
  return kept.length === 0 ? url.slice(0, q) : `${url.slice(0, q)}?${kept.join('&')}`
}

/** Removes the parameter `name` from the query of `url` (see `redactQueryParams`). */
export function redactQueryParam (url: string, name: string): string {
  return redactQueryParams(url, new Set([name]))
}

/** The same in free text (a log message, an error message): each whitespace-free run with a `?` is a URL. Linear time. */
export function redactQueryParamsInText (text: string, names: ReadonlySet<string>): string {
  const q = text.indexOf('?')
  if (q === -1 || !mayName(text, q, names)) return text
  return text.split(/(\s+)/).map((part) => part.includes('?') ? redactQueryParams(part, names) : part).join('')
}

/** A copy of `headers` with the credential ones replaced, or `headers` itself when it holds none. */
function redactHeaders (headers: Record<string, unknown>, names: ReadonlySet<string>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined
  for (const name of Object.keys(headers)) {
    if (names.has(name.toLowerCase())) (copy ??= { ...headers })[name] = REDACTED
  }
  return copy ?? headers
}

/** Reads what JSON.stringify (pino) writes: own properties, none when there is a toJSON. */
function ownField (out: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(out, name) ? out[name] : undefined
}

/** `original`'s output with credential URL parameters, headers and message text removed. */
function redacting (original: Serializer, r: Redaction): Serializer {
  if ((original as { [WRAPPED]?: boolean })[WRAPPED] === true) return original
  const wrapped = function redactCredentials (value: unknown): unknown {
    const out = original(value) as Record<string, unknown> | null
    if (out === null || typeof out !== 'object' || typeof out.toJSON === 'function') return out
    // Copied only when something is removed: Fastify's own output (no headers, most URLs without
    // a credential) goes through as it is.
    let copy: Record<string, unknown> | undefined
    const url = ownField(out, 'url')
    if (typeof url === 'string') {
      const redacted = redactQueryParams(url, r.query)
      if (redacted !== url) (copy ??= { ...out }).url = redacted
    }
    for (const field of TEXT_FIELDS) {
      const text = ownField(out, field)
      if (typeof text !== 'string') continue
      const redacted = redactQueryParamsInText(text, r.query)
      if (redacted !== text) (copy ??= { ...out })[field] = redacted
    }
    const headers = ownField(out, 'headers')
    if (headers !== null && typeof headers === 'object') {
      const redacted = redactHeaders(headers as Record<string, unknown>, r.headers)
      if (redacted !== headers) (copy ??= { ...out }).headers = redacted
    }
    return copy ?? out
  }
  return Object.assign(wrapped, { [WRAPPED]: true })
}

function redactingMessage (original: Serializer | undefined, r: Redaction): Serializer {
  if (original !== undefined && (original as { [WRAPPED]?: boolean })[WRAPPED] === true) return original
  const wrapped = function redactCredentialsInMessage (value: unknown): unknown {
    const msg = original === undefined ? value : original(value)
    return typeof msg === 'string' ? redactQueryParamsInText(msg, r.query) : msg
  }
  return Object.assign(wrapped, { [WRAPPED]: true })
}

/**
 * Wraps, in place, the serializers that can carry a credential: `req`, `res`, `err` and the
 * message (`msg`; added on the root logger even when it has none).
 */
function wrapSerializers (serializers: Serializers, r: Redaction, root: boolean): void {
  for (const name of ['req', 'res', 'err']) {
    const original = serializers[name]
    if (typeof original === 'function') serializers[name] = redacting(original, r)
  }
  if (root || typeof serializers.msg === 'function') serializers.msg = redactingMessage(serializers.msg, r)
}

export interface LogRedactionOptions {
  /** Another query parameter that carries a credential (`apiKey.query`). */
  query?: string | undefined
  /** Another header that carries a credential (`apiKey.header`). */
  header?: string | undefined
}

/**
 * Makes the application's logger drop credentials (see the top of this file). Idempotent per
 * logger: a second registration only adds its names.
 */
export function redactCredentialsInLogs (app: FastifyInstance, extra: LogRedactionOptions = {}): void {
  const serializers = (app.log as unknown as Record<symbol, Serializers | undefined>)[SERIALIZERS]
  const first = !hooked.has(app)
  hooked.add(app)
  if (serializers === undefined) {
    // Fastify's null logger (logger: false) has no serializers either; it logs nothing, so this line goes nowhere.
    if (first) app.log.warn('fastify-multiauth: the logger is not pino, so the plugin cannot remove credentials (access_token/api_key query parameters, Authorization, Cookie and API-key headers) from logged requests; configure your logger to redact them')
    return
  }
  let r = byLogger.get(serializers)
  if (r === undefined) {
    r = { query: new Set(QUERY_PARAMS), headers: new Set(HEADERS) }
    byLogger.set(serializers, r)
    wrapSerializers(serializers, r, true)
  }
  if (extra.query !== undefined) r.query.add(extra.query)
  if (extra.header !== undefined) r.headers.add(extra.header.toLowerCase())
  if (!first) return
  const redaction = r
  // A route (or its context) with serializers of its own replaces the root's for those names.
  app.addHook('onRoute', function redactRouteSerializers (route: RouteOptions) {
    const own = route.logSerializers as Serializers | undefined
    if (own === undefined || own === null) return
    const copy: Serializers = {}
    for (const name in own) copy[name] = own[name] // inherited ones too: a context's logSerializers
    wrapSerializers(copy, redaction, false)
    route.logSerializers = copy as RouteOptions['logSerializers']
  })
}
