// A default import: process-warning is CommonJS (`module.exports = out`), whose named exports
// Node's ESM loader cannot see.
import processWarning from 'process-warning'
import type { FastifyInstance } from 'fastify'
import type { MultiauthOptions } from './plugin.js'
import { durationSeconds } from './durations.js'

/**
 * Configurations the plugin accepts because they have a legitimate use, but that are unsafe
 * when they reach production by accident. Each one is a Fastify-style process warning
 * (`process.emitWarning`, as Fastify's FSTSEC* and the @fastify/* plugins do) with a stable
 * code, emitted once per process at registration. A deliberate choice is silenced for that
 * code only: `node --disable-warning=FSTMA003` (or NODE_OPTIONS). Listed in docs/security.md.
 *
 * Codes are never reused for another meaning.
 */
const { createWarning } = processWarning
const name = 'FastifyMultiauthSecurity'

export const FSTMA001 = createWarning({
  name,
  code: 'FSTMA001',
  message: 'The session cookie can be sent without the Secure attribute (%s), so anyone on the network path can read it, and it cannot carry the __Host- prefix. Use session.secure: true in production (behind a TLS proxy, with Fastify\'s trustProxy).'
})

export const FSTMA002 = createWarning({
  name,
  code: 'FSTMA002',
  message: 'session.csrf is false and @fastify/csrf-protection is not registered before fastify-multiauth: unsafe requests authenticated by the session cookie are not checked for a cross-site origin.'
})

export const FSTMA003 = createWarning({
  name,
  code: 'FSTMA003',
  message: 'basic is enabled with its failure budgets turned off (%s): online password guessing is limited only by the cost of argon2.'
})

export const FSTMA004 = createWarning({
  name,
  code: 'FSTMA004',
  message: 'token.expiresIn is %d seconds without token.revocation: a stolen access token, or one whose user logged out, stays valid that long. Turn on token.revocation, or keep access tokens to an hour or less and renew them with refresh tokens.'
})

export const FSTMA005 = createWarning({
  name,
  code: 'FSTMA005',
  message: 'callbackTimeout is 0: application callbacks and store calls are not bounded, so a hanging database holds every request that waits on it (and its socket) indefinitely.'
})

export const FSTMA006 = createWarning({
  name,
  code: 'FSTMA006',
  message: 'The application\'s @fastify/session saves sessions nobody logged into (saveUninitialized: true): every request without a cookie writes a store entry, so anyone can fill the store. Register it with saveUninitialized: false.'
})

export const FSTMA007 = createWarning({
  name,
  code: 'FSTMA007',
  message: 'The application\'s @fastify/session cookie is SameSite=None: browsers attach it to requests from every other site. Use sameSite: \'lax\', and bearer tokens for front ends on another site.'
})

/** Every warning, by code (for tests and docs). */
export const WARNINGS = { FSTMA001, FSTMA002, FSTMA003, FSTMA004, FSTMA005, FSTMA006, FSTMA007 }

/** Longest access-token lifetime (seconds) that is not worth a warning without revocation. */
export const UNREVOKABLE_TOKEN_MAX_SECONDS = 3600

/**
 * The warnings that follow from the options alone, once they are validated. The ones that need
 * the application's own @fastify/session registration are raised in src/methods/session.ts.
 */
export function warnUnsafeOptions (app: FastifyInstance, options: MultiauthOptions, timeoutMs: number): void {
  if (timeoutMs === 0) FSTMA005()
  const { session, basic, token, rateLimit } = options
  if (session?.secure === false || session?.secure === 'auto') FSTMA001(`session.secure: ${JSON.stringify(session.secure)}`)
  if (session?.csrf === false && !app.hasPlugin('@fastify/csrf-protection')) FSTMA002()
  if (basic !== undefined) {
    // The option shape: `rateLimit: false`, or either budget set to false.
    const limits = rateLimit as unknown
    const off = limits === false
      ? 'rateLimit: false'
      : ['failuresPerIp', 'failuresPerUser'].filter((key) => (limits as Record<string, unknown> | undefined)?.[key] === false).map((key) => `rateLimit.${key}: false`).join(', ')
    if (off !== '') FSTMA003(off)
  }
  if (token !== undefined && token.revocation !== true) {
    // Already validated by the token method: this only reads it again.
    const expiresIn = durationSeconds(token.expiresIn, 'token.expiresIn') ?? 0
    if (expiresIn > UNREVOKABLE_TOKEN_MAX_SECONDS) FSTMA004(expiresIn)
  }
}
