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

/** `header` starts with lower-case `scheme`, ASCII case-insensitively, without allocating a string. */
function startsWithScheme (header: string, scheme: string): boolean {
  for (let i = 0; i < scheme.length; i++) {
    const c = header.charCodeAt(i)
    // Only A-Z fold to a-z (RFC 7235 schemes are tokens; no Unicode case mapping).
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== scheme.charCodeAt(i)) return false
  }
  return true
}

/**
 * Returns the credentials after `<scheme> ` in the Authorization header when its scheme
 * is `scheme` (compared case-insensitively, RFC 7235 §2.1), `undefined` when the header
 * is absent or names another scheme. `scheme` must be lower-case.
 */
export function authorizationParam (request: FastifyRequest, scheme: string, maxLength: number): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  const n = scheme.length
  if (header.length <= n || header.charCodeAt(n) !== 32 /* space */) {
    // "Basic" alone, with nothing after it, is our scheme with no credentials: malformed.
    if (header.length === n && header.toLowerCase() === scheme) throw new BadRequestError(`empty ${scheme} credentials`)
    return undefined
  }
  if (!startsWithScheme(header, scheme)) return undefined
  if (header.length > maxLength) throw new BadRequestError('authorization header too long')
  assertSingleHeader(request, 'authorization')
  // RFC 7235 allows 1*SP between scheme and token68; trim tolerates extra spaces.
  return header.slice(n + 1).trim()
}
