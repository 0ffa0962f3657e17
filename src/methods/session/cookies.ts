import type { FastifyInstance } from 'fastify'
import { MultiauthOptionError } from '../../core/errors.js'
import { FSTMA001, FSTMA007 } from '../../core/warnings.js'

// The session cookie: its name and flags (checked at registration), the attributes that clear it,
// and what an application's own @fastify/session registration is allowed to have.

/** The attributes a session cookie was set with: a cookie is only replaced (cleared) by one with the same name, Path and Domain, and a `__Host-` one only by a Secure one. */
export interface CookieAttributes {
  path: string
  domain?: string
  secure: boolean
  httpOnly: boolean
  sameSite?: boolean | 'lax' | 'strict' | 'none'
  partitioned?: boolean
}

/** Read from the session's own cookie (as @fastify/session resolved it for this session), whatever configured it. */
export function attributesOf (cookie: Record<string, unknown> | undefined): CookieAttributes {
  const attributes: CookieAttributes = {
    path: typeof cookie?.path === 'string' ? cookie.path : '/',
    secure: cookie?.secure === true,
    httpOnly: cookie?.httpOnly !== false
  }
  if (typeof cookie?.domain === 'string') attributes.domain = cookie.domain
  const sameSite = cookie?.sameSite
  if (typeof sameSite === 'boolean' || sameSite === 'lax' || sameSite === 'strict' || sameSite === 'none') attributes.sameSite = sameSite
  if (cookie?.partitioned === true) attributes.partitioned = true
  return attributes
}

/**
 * The default cookie name: a prefix whenever the cookie is always Secure, so the browser
 * enforces what the flags say (RFC 6265bis §4.1.3). With `'auto'` the Secure flag varies per
 * request while the name is fixed at registration, so no prefix can apply.
 */
export function defaultCookieName (secure: boolean | 'auto', domain: string | undefined): string {
  if (secure !== true) return 'sid'
  return domain === undefined ? '__Host-sid' : '__Secure-sid'
}

/** Browsers drop a `__Host-`/`__Secure-` cookie whose flags break its prefix (case-insensitively): refuse that at registration. */
export function checkCookiePrefix (name: string, secure: boolean | 'auto', domain: string | undefined): void {
  const prefix = /^__(host|secure)-/i.exec(name)?.[1]?.toLowerCase()
  if (prefix === undefined) return
  const label = prefix === 'host' ? '__Host-' : '__Secure-'
  if (secure !== true) {
    throw new MultiauthOptionError(`session.cookieName "${name}" has the ${label} prefix, which browsers accept only on a Secure cookie: it needs session.secure: true (with ${JSON.stringify(secure)} the cookie would be refused or lose its protection)`)
  }
  if (prefix === 'host' && domain !== undefined) {
    throw new MultiauthOptionError(`session.cookieName "${name}": a __Host- cookie cannot have a Domain; remove session.domain or use the __Secure- prefix`)
  }
}

/**
 * The cookie settings of an application's own @fastify/session registration, read through its
 * public `decryptSession` decorator: an id that does not verify yields a fresh session with
 * exactly those settings (nothing is read from or written to the store).
 */
export function applicationCookie (app: FastifyInstance, protocol: 'http' | 'https'): Record<string, unknown> | undefined {
  const probe: { protocol: string, session?: { cookie?: Record<string, unknown> } } = { protocol }
  try {
    ;(app as unknown as { decryptSession: (id: string, request: object, done: () => void) => void }).decryptSession('', probe, () => {})
  } catch {
    return undefined
  }
  return probe.session?.cookie
}

/** Refuses what cannot be made safe in the application's @fastify/session registration, warns about the rest. */
export function inspectApplicationSession (app: FastifyInstance): void {
  const overHttps = applicationCookie(app, 'https')
  if (overHttps === undefined) return
  if (overHttps.httpOnly === false) {
    throw new MultiauthOptionError('@fastify/session is registered with cookie.httpOnly: false: any script on the page (one XSS) could read the session cookie and take the session elsewhere; remove httpOnly: false')
  }
  if (overHttps.secure !== true) FSTMA001('@fastify/session cookie.secure: false')
  else if (applicationCookie(app, 'http')?.secure !== true) FSTMA001('@fastify/session cookie.secure: "auto"')
  const sameSite = overHttps.sameSite
  if (typeof sameSite === 'string' && sameSite.toLowerCase() === 'none') FSTMA007('SameSite=None')
  else if (sameSite === undefined || sameSite === null || sameSite === false) FSTMA007('without SameSite (Firefox and Safari then treat it as None)')
}

/** A session @fastify/session saved although it holds nothing and the request had no cookie: `saveUninitialized: true`. */
export function savedEmptySession (session: Record<string, unknown> | null | undefined): boolean {
  if (session === null || session === undefined || typeof session.isSaved !== 'function' || session.isSaved() !== true) return false
  for (const key in session) if (key !== 'cookie') return false
  return true
}
