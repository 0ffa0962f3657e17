// Optional peer dependencies: the packages of one method (or of RedisStore) are loaded only
// when that method is configured, so an application that uses Basic and API keys installs and
// loads none of them. Importing fastify-multiauth never loads a peer; only the types below do.
import { createRequire } from 'node:module'
import type fastifyCookie from '@fastify/cookie'
import type fastifyOauth2 from '@fastify/oauth2'
import type fastifySession from '@fastify/session'
import type * as ioredis from 'ioredis'
import type * as jose from 'jose'
import type { FastifyPluginCallback } from 'fastify'
import type { FastJwt, JwtPluginOptions } from '../methods/token/jwt.js'
import { MultiauthOptionError } from './errors.js'

interface Peers {
  '@fastify/cookie': typeof fastifyCookie
  // Restated (src/methods/token/jwt.ts): @fastify/jwt's own types declare `request.user`.
  '@fastify/jwt': FastifyPluginCallback<JwtPluginOptions>
  '@fastify/oauth2': typeof fastifyOauth2
  '@fastify/session': typeof fastifySession
  ioredis: typeof ioredis
  jose: typeof jose
}
export type PeerName = keyof Peers

/**
 * @fastify/session's store interface, restated here so that the published declarations do not
 * import @fastify/session: they compile for an application that does not install it.
 */
export interface SessionStore {
  set (sessionId: string, session: any, callback: (err?: any) => void): void
  get (sessionId: string, callback: (err: any, result?: any) => void): void
  destroy (sessionId: string, callback: (err?: any) => void): void
}

/** The ranges in package.json's peerDependencies (test/package.test.ts checks that they agree). */
export const PEER_RANGES: Readonly<Record<PeerName, string>> = {
  '@fastify/cookie': '^11.1.5',
  '@fastify/jwt': '^10.2.8',
  '@fastify/oauth2': '^8.3.0',
  '@fastify/session': '^11.1.3',
  ioredis: '^5.11.1',
  jose: '^6.2.17'
}

// Synchronous, so that a missing package fails the registration (or `new RedisStore()`) at once,
// before anything else is set up. The same in both builds (tsup.config.ts gives the CommonJS
// build __filename for import.meta.url). jose is ESM-only: Node >= 22.13 require()s it
// without a flag or warning (22.12 printed an ExperimentalWarning).
const requirePeer = createRequire(import.meta.url)

function isMissing (err: unknown, name: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'MODULE_NOT_FOUND' &&
    (err as Error).message.startsWith(`Cannot find module '${name}'`)
}

/**
 * Loads the optional peers that `neededBy` (e.g. `the "token" option`) uses, in order. When some
 * are not installed, throws one `MultiauthOptionError` naming all of them and the install command.
 */
export function loadPeers<const N extends readonly PeerName[]> (neededBy: string, names: N): { -readonly [K in keyof N]: Peers[N[K]] } {
  const missing: PeerName[] = []
  const loaded = names.map((name) => {
    try {
      return requirePeer(name) as unknown
    } catch (err) {
      if (!isMissing(err, name)) throw err
      missing.push(name)
      return undefined
    }
  })
  if (missing.length > 0) {
    const install = missing.map((name) => `${name}@${PEER_RANGES[name]}`).join(' ')
    const kind = missing.length > 1 ? 'optional peer dependencies' : 'an optional peer dependency'
    throw new MultiauthOptionError(`${neededBy} needs ${missing.join(' and ')} (${kind} of fastify-multiauth, not installed): npm install ${install}`)
  }
  return loaded as { -readonly [K in keyof N]: Peers[N[K]] }
}

/**
 * fast-jwt, the library @fastify/jwt verifies with, resolved from @fastify/jwt's own location: the
 * very copy @fastify/jwt uses, so there is no second dependency to keep in step with it. Call it
 * after `loadPeers(…, ['@fastify/jwt'])` succeeded.
 */
export function loadFastJwt (): FastJwt {
  return createRequire(requirePeer.resolve('@fastify/jwt'))('fast-jwt') as FastJwt
}
