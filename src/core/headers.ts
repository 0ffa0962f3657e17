import type { FastifyRequest } from 'fastify'
import { BadRequestError } from './errors.js'

/** Longest Authorization or API-key header value we decode; longer is a 400. */
export const DEFAULT_MAX_CREDENTIAL_LENGTH = 8192

/**
 * Node keeps only the first of several `Authorization` headers and joins other repeated
 * headers with ", ", so a repeated credential header is only visible in `rawHeaders`.
 * Called only when the header is present, so requests without it pay nothing.
 */
export function assertSingleHeader (request: FastifyRequest, lowerName: string): void {
  const raw = request.raw.rawHeaders
  let seen = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === lowerName.length && name.toLowerCase() === lowerName && ++seen > 1) {
      throw new BadRequestError(`repeated ${lowerName} header`)
    }
  }
}

/** `header` has lower-case `scheme` at `at`, ASCII case-insensitively, without allocating a string. */
function schemeAt (header: string, at: number, scheme: string): boolean {
  for (let i = 0; i < scheme.length; i++) {
    const c = header.charCodeAt(at + i)
    // Only A-Z fold to a-z (RFC 7235 schemes are tokens; no Unicode case mapping).
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== scheme.charCodeAt(i)) return false
  }
  return true
}

/** SP or HTAB: the only whitespace HTTP knows (RFC 9110 §5.6.3 OWS). */
const isOws = (c: number): boolean => c === 32 || c === 9

// RFC 7235 §2.1 token68, which RFC 6750's b64token is too: nothing else may follow the scheme.
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/

/**
 * Returns the token68 after `<scheme>` in the Authorization header when its scheme is
 * `scheme` (compared ASCII case-insensitively, RFC 7235 §2.1), `undefined` when the header is
 * absent or names another scheme; `scheme` must be lower-case. Strict, for Basic and Bearer
 * alike: `credentials = auth-scheme 1*SP token68`. Leading and trailing SP/HTAB are not part
 * of a field value (RFC 9110 §5.5; Node's parser already drops them on the wire) and are
 * ignored; anything else — a tab or U+00A0 after the scheme, a space inside or after the
 * token, `#auth-param` syntax — is not a token68, so a 400 for a scheme we own.
 */
export function authorizationParam (request: FastifyRequest, scheme: string, maxLength: number): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  let start = 0
  let end = header.length
  while (start < end && isOws(header.charCodeAt(start))) start++
  while (end > start && isOws(header.charCodeAt(end - 1))) end--
  const n = scheme.length
  if (end - start < n || !schemeAt(header, start, scheme)) return undefined
  // "Basic" alone, with nothing after it, is our scheme with no credentials: malformed.
  if (end - start === n) throw new BadRequestError(`empty ${scheme} credentials`)
  // "Basicx …" or "Basic\t…" is another scheme (a tab is not the SP the grammar asks for).
  if (header.charCodeAt(start + n) !== 32 /* SP */) return undefined
  if (header.length > maxLength) throw new BadRequestError('authorization header too long')
  assertSingleHeader(request, 'authorization')
  let at = start + n + 1
  while (header.charCodeAt(at) === 32) at++ // 1*SP; at < end: trailing spaces are gone
  const token = header.slice(at, end)
  if (!TOKEN68.test(token)) throw new BadRequestError(`${scheme} credentials are not a token68 (RFC 7235 §2.1)`)
  return token
}
