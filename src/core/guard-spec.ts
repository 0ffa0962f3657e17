import { MultiauthOptionError } from './errors.js'
import type { GuardContext } from './guard.js'
import type { AuthMethod, GuardSpec, MethodName } from './types.js'
import { isPlainObject } from './validate.js'

// What an `authGuard(spec)` means, worked out once when the guard is made: a spec that cannot be
// honoured (an unknown or unconfigured method, roles without a way to know a user's roles) is a
// startup error, never a request-time surprise. The guard (./guard.ts) reads only the result.

const ALL_METHODS: readonly MethodName[] = ['basic', 'token', 'apiKey', 'session', 'oauth2']
const GUARD_KEYS = ['methods', 'mode', 'roles', 'scopes', 'optional']

/** A checked guard spec, in the form the guard reads per request. */
export interface CompiledGuard {
  methods: AuthMethod[]
  /** The methods' names, for the tracing context. */
  names: readonly MethodName[]
  all: boolean
  /** Any one inner list must be fully held. */
  roles: string[][] | undefined
  scopes: string[] | undefined
  optional: boolean
  /** Challenges for a 401 when nothing was presented: computed once. */
  missingChallenges: string[]
}

/** Checks `spec` against the configured methods; throws `MultiauthOptionError` naming what is wrong. */
export function compileGuardSpec (ctx: GuardContext, spec: GuardSpec): CompiledGuard {
  const options = Array.isArray(spec) ? { methods: spec } : spec
  if (!isPlainObject(options)) throw new MultiauthOptionError('authGuard() takes a list of methods or { methods, mode, roles, scopes, optional }')
  for (const key of Object.keys(options)) {
    if (!GUARD_KEYS.includes(key)) throw new MultiauthOptionError(`unknown authGuard option "${key}" (allowed: ${GUARD_KEYS.join(', ')})`)
  }
  const { methods: names, mode = 'any', roles, scopes, optional = false } = options as Exclude<GuardSpec, readonly MethodName[]>
  if (!Array.isArray(names) || names.length === 0) throw new MultiauthOptionError('authGuard() needs at least one method')
  const methods = names.map((name: unknown) => {
    if (!ALL_METHODS.includes(name as MethodName)) {
      throw new MultiauthOptionError(`authGuard(): unknown method "${String(name)}" (known: ${ALL_METHODS.join(', ')})`)
    }
    const method = ctx.methods.get(name as MethodName)
    if (method === undefined) {
      throw new MultiauthOptionError(`authGuard(): method "${String(name)}" is not configured; pass the "${String(name)}" option when registering fastify-multiauth`)
    }
    return method
  })
  if (new Set(names).size !== names.length) throw new MultiauthOptionError('authGuard(): a method is listed twice')
  if (mode !== 'any' && mode !== 'all') throw new MultiauthOptionError('authGuard(): mode must be "any" or "all"')
  if (typeof optional !== 'boolean') throw new MultiauthOptionError('authGuard(): optional must be a boolean')
  if (optional && mode === 'all') throw new MultiauthOptionError('authGuard(): optional cannot be combined with mode "all"')

  let compiledRoles: string[][] | undefined
  if (roles !== undefined) {
    if (!Array.isArray(roles) || roles.length === 0) throw new MultiauthOptionError('authGuard(): roles must be a non-empty array')
    if (ctx.roles === undefined && !methods.some((method) => method.mapsRoles === true)) {
      throw new MultiauthOptionError('authGuard(): roles need the "roles" option (a function returning the user\'s roles), or a token issuer that maps roles (token.issuers[].roles)')
    }
    compiledRoles = roles.map((entry: unknown) => {
      const all = Array.isArray(entry) ? entry : [entry]
      if (all.length === 0 || !all.every((r) => typeof r === 'string' && r.length > 0)) {
        throw new MultiauthOptionError('authGuard(): roles must be strings or non-empty arrays of strings')
      }
      return all as string[]
    })
  }
  let compiledScopes: string[] | undefined
  if (scopes !== undefined) {
    if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string' && s.length > 0)) {
      throw new MultiauthOptionError('authGuard(): scopes must be an array of strings')
    }
    compiledScopes = scopes.length > 0 ? [...scopes] : undefined
  }
  return {
    methods,
    names: Object.freeze(methods.map((method) => method.name)),
    all: mode === 'all',
    roles: compiledRoles,
    scopes: compiledScopes,
    optional,
    missingChallenges: methods.flatMap((m) => m.challenge === undefined ? [] : [m.challenge])
  }
}
