import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { boundedCallback, callbackError } from './callbacks.js'
import { BadRequestError, ForbiddenError } from './errors.js'
import { events, requestFields, userIdOf } from './events.js'
import type { CallbackName } from './events.js'
import { forbidden, forbiddenByFailure, hasForbidden, malformed, refuse, unauthorized } from './guard-refusals.js'
import type { ForbiddingFailure } from './guard-refusals.js'
import { compileGuardSpec } from './guard-spec.js'
import type { CompiledGuard } from './guard-spec.js'
import { traceGuard, tracingActive } from './guard-tracing.js'
import { describeGuard } from '../integrations/openapi.js'
import type { GuardDescription } from '../integrations/openapi.js'
import { AuthFailure, isThenable, setRequestUser } from './outcome.js'
import { isPreflight } from './preflight.js'
import type { AuthInfo, AuthMethod, AuthSuccess, GuardSpec, MethodName, MultiauthUser, UserRoles } from './types.js'

// `authGuard(spec)` and `verifyBasic` & co.: each request runs the spec's methods in order (any-of
// or all-of), synchronously until a step answers with a promise. What a spec means is checked
// once in ./guard-spec.ts; what a refusal logs, publishes and answers is ./guard-refusals.ts.

export type RolesCallback = (user: MultiauthUser, request: FastifyRequest) => UserRoles | Promise<UserRoles>

/** What the guard needs from the plugin; built once at registration. */
export interface GuardContext {
  methods: ReadonlyMap<MethodName, AuthMethod>
  roles?: RolesCallback
  /** Upper bound for one verification (user callbacks, store calls); 0 disables. */
  timeoutMs: number
  /** Rate limits (src/rate-limit/): the failure budgets by default with `basic`, or as `rateLimit` says. */
  limits?: GuardLimits
}

/**
 * A guard's check: `undefined` when it finished synchronously (admitted), a promise when some
 * step answered asynchronously; a synchronous refusal is thrown. `createGuard` and
 * `createVerifier` turn it into the two public shapes.
 */
export type GuardRun = (request: FastifyRequest, reply: FastifyReply) => Promise<void> | undefined

/** A method's verification, as the guard runs it: synchronous when the method answered synchronously. */
export type VerifyOutcome = AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure>

/**
 * Where rate limiting meets authentication (src/rate-limit/). Each step may throw a 429 (or
 * a 503), and stays synchronous when its counter is in this process. The order is the point:
 * failure budgets are checked before any credential is verified, and the keyed budget is
 * counted only after a method has authenticated the request.
 */
export interface GuardLimits {
  /** Runs the whole guard: per-IP failure budget before, failure counting after a refusal. */
  guard (run: GuardRun, request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined
  /** Runs one method's verification of presented credentials (per-username failure budget for Basic). */
  verify (method: AuthMethod, credentials: unknown, request: FastifyRequest, reply: FastifyReply, run: () => VerifyOutcome): VerifyOutcome
  /** After authentication, before roles and scopes: the keyed budget (key id, else user id), when on; `undefined` when nothing was counted. */
  admitted?: (success: AuthSuccess, request: FastifyRequest, reply: FastifyReply) => Promise<void> | undefined
}

const NO_STRINGS: readonly string[] = Object.freeze([])
/** The callback a method's verification runs, when the method does not say (`AuthMethod.callbackOf`). The `oauth2` guard method checks a session. */
const METHOD_CALLBACKS: Readonly<Record<MethodName, CallbackName>> = Object.freeze({
  basic: 'basic.verify',
  token: 'token.findUser',
  apiKey: 'apiKey.verify',
  session: 'session.findUser',
  oauth2: 'session.findUser'
})

/** Runs `method.extract`; credentials that cannot be decoded are reported (`refused`, reason `malformed`) before the 400 goes on. */
function extractCredentials (method: AuthMethod, request: FastifyRequest): unknown {
  try {
    return method.extract(request)
  } catch (err) {
    if (err instanceof BadRequestError) malformed(request, method)
    throw err
  }
}

/** Runs a method's verify (inside the failure budgets when on): a synchronous answer stays synchronous; any throw is mapped once. */
function runVerify (ctx: GuardContext, method: AuthMethod, credentials: unknown, request: FastifyRequest, reply: FastifyReply): VerifyOutcome {
  if (ctx.limits !== undefined) return ctx.limits.verify(method, credentials, request, reply, () => verifyOnce(ctx, method, credentials, request, reply))
  return verifyOnce(ctx, method, credentials, request, reply)
}

function verifyOnce (ctx: GuardContext, method: AuthMethod, credentials: unknown, request: FastifyRequest, reply: FastifyReply): VerifyOutcome {
  let outcome
  try {
    outcome = method.verify(credentials, request, reply)
  } catch (err) {
    throw callbackError(err, callbackOf(method, credentials), request)
  }
  return isThenable(outcome) ? boundedCallback(ctx.timeoutMs, outcome, callbackOf(method, credentials), request) : outcome
}

/** The option path of the callback `method` runs for `credentials` (a constant per method and configuration). */
function callbackOf (method: AuthMethod, credentials: unknown): CallbackName {
  return method.callbackOf?.(credentials) ?? METHOD_CALLBACKS[method.name]
}

/** Only strings, compared whole: a roles result of another shape is bad data (500), never matched loosely. */
function stringList (value: unknown): readonly string[] | undefined {
  const list = Array.isArray(value) ? value : value instanceof Set ? [...value] : undefined
  return list !== undefined && list.every((entry) => typeof entry === 'string') ? list : undefined
}

function normaliseRoles (value: UserRoles, request: FastifyRequest): readonly string[] {
  if (value === null || value === undefined) return NO_STRINGS
  if (typeof value === 'string') return [value]
  const roles = stringList(value)
  if (roles === undefined) throw callbackError(new TypeError('roles(user) must return a string, an array or a Set of strings, or null'), 'roles', request)
  return roles
}

function sameUser (a: MultiauthUser, b: MultiauthUser): boolean {
  if (a === b) return true
  const idA = (a as { id?: unknown }).id
  // A null id is no id: two users whose id is missing are never the same user.
  return idA !== undefined && idA !== null && idA === (b as { id?: unknown }).id
}

/**
 * Sets request.user/request.auth and enforces roles and scopes. Returns a promise only when
 * the roles callback does, so the common case adds no await.
 */
function admit (ctx: GuardContext, guard: CompiledGuard, method: AuthMethod, success: AuthSuccess, request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
  // The keyed budget (key id, else user id) is counted once authenticated, before roles and scopes.
  const counted = ctx.limits?.admitted?.(success, request, reply)
  if (counted === undefined) return admitNow(ctx, guard, method, success, request, reply)
  return counted.then(() => admitNow(ctx, guard, method, success, request, reply))
}

function admitNow (ctx: GuardContext, guard: CompiledGuard, method: AuthMethod, success: AuthSuccess, request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
  if (ctx.roles === undefined) return enforce(guard, method, success, success.roles ?? NO_STRINGS, request, reply)
  let roles
  try {
    roles = ctx.roles(success.user, request)
  } catch (err) {
    throw callbackError(err, 'roles', request)
  }
  if (isThenable(roles)) return boundedCallback(ctx.timeoutMs, roles, 'roles', request).then((value) => enforce(guard, method, success, normaliseRoles(value, request), request, reply))
  return enforce(guard, method, success, normaliseRoles(roles, request), request, reply)
}

function enforce (guard: CompiledGuard, method: AuthMethod, success: AuthSuccess, roles: readonly string[], request: FastifyRequest, reply: FastifyReply): undefined {
  // Every method hands an array of strings; a custom AuthMethod's string would match as a substring.
  const scopes = success.scopes === undefined ? NO_STRINGS : stringList(success.scopes)
  if (scopes === undefined) throw callbackError(new TypeError(`the ${method.name} method reported scopes that are not an array of strings`), callbackOf(method, undefined), request)
  const auth = {
    method: success.method,
    user: success.user,
    roles,
    scopes,
    claims: success.claims,
    keyId: success.keyId,
    provider: success.provider,
    ...(success.issuer === undefined ? {} : { issuer: success.issuer })
  } as AuthInfo
  // Once per request: a second guard on it (a scope hook and a route hook) admits it again, silently.
  const first = events.authenticated.hasSubscribers && request.auth === null
  setRequestUser(request, success.user)
  request.auth = auth
  const rolesOk = guard.roles === undefined || guard.roles.some((all) => all.every((r) => roles.includes(r)))
  const scopesOk = guard.scopes === undefined || guard.scopes.every((s) => scopes.includes(s))
  if (!rolesOk || !scopesOk) {
    request.log.info({ authMethod: method.name, reason: rolesOk ? 'missing scope' : 'missing role' }, 'multiauth: access forbidden')
    forbidden(request, success.method, success.user, rolesOk ? 'scope' : 'role')
    if (method.forbiddenChallenge !== undefined) reply.header('www-authenticate', method.forbiddenChallenge)
    throw new ForbiddenError()
  }
  if (first) {
    events.authenticated.publish({
      ...requestFields(request),
      method: success.method,
      userId: userIdOf(success.user),
      keyId: success.keyId,
      provider: success.provider,
      issuer: success.issuer
    })
  }
  return undefined
}

const DIFFERENT_USERS = new AuthFailure('different-users', 'methods identified different users')

/** What an any-of guard remembers about refused credentials; only made once one is refused. */
interface Refusals {
  badRequest?: Error
  refused?: Set<AuthMethod>
  /** The first credential refused with a 403 of its own (a session cookie sent cross-site), and its method. */
  forbidden?: { failure: ForbiddingFailure, method: AuthMethod }
}

/** Compiles one guard spec into its check. The spec is checked here, once (./guard-spec.ts), never per request. */
function compileCheck (ctx: GuardContext, spec: GuardSpec): { check: GuardRun, description: GuardDescription, names: readonly MethodName[] } {
  const guard = compileGuardSpec(ctx, spec)
  const { methods } = guard

  /** mode 'all': a failure ends the request; a success must name the same user as the first one. */
  function allAccept (method: AuthMethod, outcome: AuthSuccess | AuthFailure, first: AuthSuccess | undefined, request: FastifyRequest, reply: FastifyReply): AuthSuccess {
    if (outcome instanceof AuthFailure) {
      refuse(request, method, outcome)
      if (hasForbidden(outcome)) throw forbiddenByFailure(request, method, outcome)
      throw unauthorized(request, reply, guard, new Set([method]))
    }
    if (first === undefined) return outcome
    if (!sameUser(first.user, outcome.user)) {
      refuse(request, method, DIFFERENT_USERS)
      throw unauthorized(request, reply, guard, new Set([method]))
    }
    return first
  }

  /** Runs methods[start..] synchronously until one answers with a promise, then resumes after it. */
  function allFrom (start: number, first: AuthSuccess | undefined, request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
    for (let i = start; i < methods.length; i++) {
      const method = methods[i] as AuthMethod
      const credentials = extractCredentials(method, request)
      if (credentials === undefined) throw unauthorized(request, reply, guard, undefined)
      const outcome = runVerify(ctx, method, credentials, request, reply)
      if (isThenable(outcome)) {
        const before = first
        return outcome.then((value) => allFrom(i + 1, allAccept(method, value, before, request, reply), request, reply))
      }
      first = allAccept(method, outcome, first, request, reply)
    }
    return admit(ctx, guard, methods[0] as AuthMethod, first as AuthSuccess, request, reply)
  }

  function checkAll (request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
    if (isPreflight(request)) return undefined
    return allFrom(0, undefined, request, reply)
  }

  function anyRefused (refusals: Refusals | undefined, method: AuthMethod, failure: AuthFailure, request: FastifyRequest): Refusals {
    refuse(request, method, failure)
    const state = refusals ?? {}
    if (hasForbidden(failure)) state.forbidden ??= { failure, method }
    else (state.refused ??= new Set()).add(method)
    return state
  }

  /**
   * mode 'any': tries methods[start..] in order; the first success is admitted. Stays
   * synchronous until a method answers with a promise, then resumes after it.
   * `refusals` is undefined as long as no credentials were presented (the fast path allocates nothing).
   */
  function anyFrom (start: number, refusals: Refusals | undefined, request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
    for (let i = start; i < methods.length; i++) {
      const method = methods[i] as AuthMethod
      let credentials: unknown
      try {
        credentials = extractCredentials(method, request)
      } catch (err) {
        if (!(err instanceof BadRequestError)) throw err
        // Keep going: another method may still admit the request (any-of).
        refusals ??= {}
        refusals.badRequest ??= err
        continue
      }
      if (credentials === undefined) continue
      const outcome = runVerify(ctx, method, credentials, request, reply)
      if (isThenable(outcome)) {
        const before = refusals
        return outcome.then((value) => value instanceof AuthFailure
          ? anyFrom(i + 1, anyRefused(before, method, value, request), request, reply)
          : admit(ctx, guard, method, value, request, reply))
      }
      if (!(outcome instanceof AuthFailure)) return admit(ctx, guard, method, outcome, request, reply)
      refusals = anyRefused(refusals, method, outcome, request)
    }
    // Every presented credential was refused, or none was presented.
    if (refusals === undefined) {
      if (guard.optional) return undefined
      throw unauthorized(request, reply, guard, undefined)
    }
    if (refusals.forbidden !== undefined) throw forbiddenByFailure(request, refusals.forbidden.method, refusals.forbidden.failure)
    if (refusals.badRequest !== undefined) throw refusals.badRequest
    throw unauthorized(request, reply, guard, refusals.refused)
  }

  function checkAny (request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
    if (isPreflight(request)) return undefined
    return anyFrom(0, undefined, request, reply)
  }

  const check = guard.all ? checkAll : checkAny
  const { limits } = ctx
  const { names } = guard
  // For the OpenAPI document (src/integrations/openapi.ts): read at startup, never per request.
  const description = { methods, all: guard.all, scopes: guard.scopes ?? NO_STRINGS, optional: guard.optional }
  if (limits === undefined) return { check, description, names }
  // Synchronous when the counters are in this process and nothing has to wait.
  return {
    check: function limitedCheck (request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
      if (isPreflight(request)) return undefined
      return limits.guard(check, request, reply)
    },
    description,
    names
  }
}

/**
 * `authGuard(spec)`: an `onRequest` hook in Fastify's callback style, so a guard whose steps
 * all answered synchronously calls `done()` at once: no promise for Fastify to resolve, no
 * extra tick. Otherwise it calls `done` when the promise settles. Called without `done`
 * (by hand, `await guard(request, reply)`), it returns a promise like an async hook.
 */
export interface MultiauthGuardHook {
  (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void
  (request: FastifyRequest, reply: FastifyReply): Promise<void>
}

const RESOLVED: Promise<void> = Promise.resolve()

export function createGuard (ctx: GuardContext, spec: GuardSpec): MultiauthGuardHook {
  const { check, description, names } = compileCheck(ctx, spec)
  function multiauthGuard (request: FastifyRequest, reply: FastifyReply, done?: HookHandlerDoneFunction): Promise<void> | undefined {
    let pending: Promise<void> | undefined
    try {
      // Traced only while someone listens (docs/events.md); otherwise exactly the check.
      pending = tracingActive() ? traceGuard(check, names, request, reply) : check(request, reply)
    } catch (err) {
      if (done === undefined) return Promise.reject(err)
      done(err as Error)
      return undefined
    }
    if (done === undefined) return pending ?? RESOLVED
    if (pending === undefined) done()
    else pending.then(() => { done() }, done)
    return undefined
  }
  return describeGuard(multiauthGuard, description) as MultiauthGuardHook
}

/**
 * `verifyBasic` & co.: the same check for one method, always as a promise
 * (`(request, reply) => Promise<void>`, what @fastify/auth expects).
 */
export function createVerifier (ctx: GuardContext, name: MethodName): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const { check, description, names } = compileCheck(ctx, [name])
  return describeGuard(async function multiauthVerify (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const pending = tracingActive() ? traceGuard(check, names, request, reply) : check(request, reply)
    if (pending !== undefined) await pending
  }, description)
}
