import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import {
  BadRequestError, CallbackTimeoutError, ForbiddenError, MESSAGE_FORBIDDEN, MESSAGE_INVALID,
  MESSAGE_MISSING, MultiauthOptionError, UnauthorizedError
} from './errors.js'
import { AuthFailure } from './types.js'
import type { AuthInfo, AuthMethod, AuthSuccess, GuardSpec, MethodName, MultiauthUser, UserRoles } from './types.js'
import { isPlainObject } from './validate.js'

export type RolesCallback = (user: MultiauthUser, request: FastifyRequest) => UserRoles | Promise<UserRoles>

/** What the guard needs from the plugin; built once at registration. */
export interface GuardContext {
  methods: ReadonlyMap<MethodName, AuthMethod>
  roles?: RolesCallback
  /** Upper bound for one verification (user callbacks, store calls); 0 disables. */
  timeoutMs: number
}

const ALL_METHODS: readonly MethodName[] = ['basic', 'token', 'apiKey', 'session', 'oauth2']
const GUARD_KEYS = ['methods', 'mode', 'roles', 'scopes', 'optional']
const NO_STRINGS: readonly string[] = Object.freeze([])

interface CompiledGuard {
  methods: AuthMethod[]
  all: boolean
  /** Any one inner list must be fully held. */
  roles: string[][] | undefined
  scopes: string[] | undefined
  optional: boolean
  /** Challenges for a 401 when nothing was presented: computed once. */
  missingChallenges: string[]
}

function compile (ctx: GuardContext, spec: GuardSpec): CompiledGuard {
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
    if (ctx.roles === undefined) throw new MultiauthOptionError('authGuard(): roles need the "roles" option (a function returning the user\'s roles)')
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
    all: mode === 'all',
    roles: compiledRoles,
    scopes: compiledScopes,
    optional,
    missingChallenges: methods.flatMap((m) => m.challenge === undefined ? [] : [m.challenge])
  }
}

function timeout (ms: number): { promise: Promise<never>, cancel: () => void } {
  let timer: NodeJS.Timeout | undefined
  const promise = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new CallbackTimeoutError()), ms)
  })
  return { promise, cancel: () => clearTimeout(timer) }
}

/** Runs one method's verification, bounded by the configured timeout when it is asynchronous. */
async function verify (ctx: GuardContext, method: AuthMethod, credentials: unknown, request: FastifyRequest, reply: FastifyReply): Promise<AuthSuccess | AuthFailure> {
  const pending = method.verify(credentials, request, reply)
  if (ctx.timeoutMs === 0 || !(pending instanceof Promise)) return await pending
  const limit = timeout(ctx.timeoutMs)
  try {
    return await Promise.race([pending, limit.promise])
  } finally {
    limit.cancel()
  }
}

function normaliseRoles (value: UserRoles): readonly string[] {
  if (value === null || value === undefined) return NO_STRINGS
  if (typeof value === 'string') return [value]
  return Array.isArray(value) ? value : [...(value as ReadonlySet<string>)]
}

function sameUser (a: MultiauthUser, b: MultiauthUser): boolean {
  if (a === b) return true
  const idA = (a as { id?: unknown }).id
  return idA !== undefined && idA === (b as { id?: unknown }).id
}

function refuse (request: FastifyRequest, method: AuthMethod, failure: AuthFailure): void {
  request.log.info({ authMethod: method.name, reason: failure.reason }, 'multiauth: credentials refused')
}

function unauthorized (reply: FastifyReply, guard: CompiledGuard, refused: Set<AuthMethod> | undefined): Error {
  const challenges = refused === undefined
    ? guard.missingChallenges
    : guard.methods.flatMap((m) => {
      const c = refused.has(m) ? (m.invalidChallenge ?? m.challenge) : m.challenge
      return c === undefined ? [] : [c]
    })
  if (challenges.length > 0) reply.header('www-authenticate', challenges.length === 1 ? challenges[0] : challenges)
  return new UnauthorizedError(refused === undefined ? MESSAGE_MISSING : MESSAGE_INVALID)
}

/** Sets request.user/request.auth and enforces roles and scopes. */
async function admit (ctx: GuardContext, guard: CompiledGuard, method: AuthMethod, success: AuthSuccess, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const roles = ctx.roles === undefined ? NO_STRINGS : normaliseRoles(await ctx.roles(success.user, request))
  const scopes = success.scopes ?? NO_STRINGS
  const auth = {
    method: success.method,
    user: success.user,
    roles,
    scopes,
    claims: success.claims,
    keyId: success.keyId,
    provider: success.provider
  } as AuthInfo
  request.user = success.user
  request.auth = auth
  const rolesOk = guard.roles === undefined || guard.roles.some((all) => all.every((r) => roles.includes(r)))
  const scopesOk = guard.scopes === undefined || guard.scopes.every((s) => scopes.includes(s))
  if (!rolesOk || !scopesOk) {
    request.log.info({ authMethod: method.name, reason: rolesOk ? 'missing scope' : 'missing role' }, 'multiauth: access forbidden')
    if (method.forbiddenChallenge !== undefined) reply.header('www-authenticate', method.forbiddenChallenge)
    throw new ForbiddenError(MESSAGE_FORBIDDEN)
  }
}

/** Builds the `onRequest` hook for one guard spec. All checking of the spec happens here, once. */
export function createGuard (ctx: GuardContext, spec: GuardSpec): onRequestAsyncHookHandler {
  const guard = compile(ctx, spec)
  const { methods } = guard

  async function guardAll (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    let first: AuthSuccess | undefined
    for (const method of methods) {
      const credentials = method.extract(request)
      if (credentials === undefined) throw unauthorized(reply, guard, undefined)
      const outcome = await verify(ctx, method, credentials, request, reply)
      if (outcome instanceof AuthFailure) {
        refuse(request, method, outcome)
        if (outcome.forbidden !== undefined) throw new ForbiddenError(outcome.forbidden)
        throw unauthorized(reply, guard, new Set([method]))
      }
      if (first === undefined) first = outcome
      else if (!sameUser(first.user, outcome.user)) {
        refuse(request, method, new AuthFailure('methods identified different users'))
        throw unauthorized(reply, guard, new Set([method]))
      }
    }
    await admit(ctx, guard, methods[0] as AuthMethod, first as AuthSuccess, request, reply)
  }

  async function guardAny (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    let presented = false
    let badRequest: Error | undefined
    let refused: Set<AuthMethod> | undefined
    let forbidden: AuthFailure | undefined
    for (const method of methods) {
      let credentials: unknown
      try {
        credentials = method.extract(request)
      } catch (err) {
        if (!(err instanceof BadRequestError)) throw err
        // Keep going: another method may still admit the request (any-of).
        presented = true
        badRequest ??= err
        continue
      }
      if (credentials === undefined) continue
      presented = true
      const outcome = await verify(ctx, method, credentials, request, reply)
      if (outcome instanceof AuthFailure) {
        refuse(request, method, outcome)
        if (outcome.forbidden !== undefined) forbidden ??= outcome
        else (refused ??= new Set()).add(method)
        continue
      }
      return await admit(ctx, guard, method, outcome, request, reply)
    }
    if (!presented && guard.optional) return
    if (forbidden !== undefined) throw new ForbiddenError(forbidden.forbidden)
    if (badRequest !== undefined) throw badRequest
    throw unauthorized(reply, guard, refused)
  }

  const run = guard.all ? guardAll : guardAny
  return async function multiauthGuard (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // A CORS preflight carries no credentials by design (Fetch standard); let @fastify/cors answer it.
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) return
    await run(request, reply)
  }
}
