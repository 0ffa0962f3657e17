import type { FastifyRequest } from 'fastify'
import { MultiauthOptionError } from '../../core/errors.js'
import { checkKeys, checkObject } from '../../core/validate.js'

// Cross-site request defence for unsafe methods carrying the session cookie (Origin / Sec-Fetch-Site).

export const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

export function checkTrustedOrigins (csrf: unknown): Set<string> | undefined {
  if (csrf === false) return undefined
  if (csrf === undefined) return new Set()
  const options = checkObject(csrf, 'session.csrf')
  checkKeys(options, ['trustedOrigins'], 'session.csrf')
  const list = options.trustedOrigins ?? []
  if (!Array.isArray(list)) throw new MultiauthOptionError('session.csrf.trustedOrigins must be an array of origins')
  return new Set(list.map((origin: unknown) => {
    let parsed: URL | undefined
    try { parsed = new URL(String(origin)) } catch {}
    if (typeof origin !== 'string' || parsed === undefined || parsed.origin !== origin) {
      throw new MultiauthOptionError(`session.csrf.trustedOrigins: "${String(origin)}" is not an origin like https://app.example.com`)
    }
    return origin
  }))
}

/**
 * Whether an unsafe request carrying the session cookie comes from our own pages.
 * Browsers send `Sec-Fetch-Site` (all current ones) and `Origin` on every POST, and a
 * page cannot forge either; a request with neither is refused, because a session
 * cookie comes from a browser (non-browser clients use Basic, tokens or API keys).
 */
export function sameOriginRequest (request: FastifyRequest, trusted: ReadonlySet<string>): boolean {
  const origin = request.headers.origin
  const site = request.headers['sec-fetch-site']
  if (site === 'same-origin' || site === 'none') return true
  if (origin === undefined) return false
  if (trusted.has(origin)) return true
  // Sec-Fetch-Site says cross-site or same-site: only a trusted origin may pass.
  if (site !== undefined) return false
  return origin === `${request.protocol}://${request.host.toLowerCase()}`
}
