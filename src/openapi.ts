import type { FastifyInstance, RouteOptions } from 'fastify'
import type { AuthMethod, MethodName, OpenApiSecurityScheme } from './types.js'
import { isPlainObject } from './validate.js'

// OpenAPI for guarded routes, with @fastify/swagger registered by the application.
//
// @fastify/swagger builds its document lazily, from the route options it saw in `onRoute`,
// and it throws when an operation's `security` names a scheme that `components` lacks. The
// components come from the application's own swagger options, which a plugin cannot reach,
// so the document is completed in two steps, none of them at request time:
//  1. at `onReady`, every route guarded by `authGuard` or a `verify*` decorator (route hooks,
//     and hooks the route inherits from `addHook` in its plugin) gets its requirements in
//     an extension key of its schema, which @fastify/swagger copies to the operation (a
//     route's own `schema.security` moves there too, and wins);
//  2. `app.swagger()` is wrapped: it adds our `components.securitySchemes` and turns the
//     extension key into the operation's `security`, once per generated document.

/** What a guard hook tells the document: set once, when the guard is built. */
export interface GuardDescription {
  methods: readonly AuthMethod[]
  all: boolean
  scopes: readonly string[]
  optional: boolean
}

/** A Security Requirement Object: scheme name → scopes (every entry of one object is required). */
type Requirement = Record<string, string[]>

/** Carries the requirements from the route schema to the operation; removed by the wrapped `swagger()`. */
export const SECURITY_EXTENSION = 'x-multiauth-security'
const kGuard = Symbol('fastify-multiauth.guard')
const kWrapped = Symbol('fastify-multiauth.swagger')
/** Hooks that run before the handler and can refuse the request. */
const GUARD_HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler'] as const

/** Marks a guard hook, so that routes using it can be found at startup. Costs nothing per request. */
export function describeGuard<T extends object> (hook: T, description: GuardDescription): T {
  Object.defineProperty(hook, kGuard, { value: description })
  return hook
}

function guardOf (hook: unknown): GuardDescription | undefined {
  return typeof hook === 'function' ? (hook as unknown as Record<symbol, GuardDescription | undefined>)[kGuard] : undefined
}

function guardsIn (hooks: unknown): GuardDescription[] {
  const list = Array.isArray(hooks) ? hooks : [hooks]
  return list.flatMap((hook) => {
    const guard = guardOf(hook)
    return guard === undefined ? [] : [guard]
  })
}

/** Every entry of `a` and of `b` required: one requirement per pair. */
function both (a: Requirement[], b: Requirement[]): Requirement[] {
  return a.flatMap((x) => b.map((y) => {
    const merged: Requirement = { ...x }
    for (const [name, scopes] of Object.entries(y)) merged[name] = [...new Set([...(merged[name] ?? []), ...scopes])]
    return merged
  }))
}

/** Any-of: one requirement per scheme; mode 'all': one requirement with every method; optional: also `{}`. */
function requirementsOf (guard: GuardDescription, schemeNames: ReadonlyMap<MethodName, string[]>): Requirement[] {
  const alternatives = guard.methods
    .map((m) => schemeNames.get(m.name) ?? [])
    .filter((names) => names.length > 0)
  const requirement = (name: string): Requirement => ({ [name]: [...guard.scopes] })
  const requirements = guard.all
    ? alternatives.reduce<Requirement[]>((acc, names) => both(acc, names.map(requirement)), [{}])
    : alternatives.flat().map(requirement)
  if (guard.optional) requirements.push({})
  return requirements
}

function unique (requirements: Requirement[]): Requirement[] {
  const seen = new Set<string>()
  return requirements.filter((r) => {
    const key = JSON.stringify(Object.entries(r).sort(([a], [b]) => a < b ? -1 : 1))
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

/**
 * Fastify keeps the hooks an instance got from `addHook` under a private symbol, and offers
 * no public accessor. Read-only use; when a future Fastify changes it, only guards added
 * with `addHook` go unseen (route-level guards still are).
 */
function hookListOf (root: FastifyInstance): (instance: FastifyInstance) => Record<string, unknown> | undefined {
  const symbol = Object.getOwnPropertySymbols(root).find((s) => s.description === 'fastify.hooks')
  return (instance) => {
    const hooks = symbol === undefined ? undefined : (instance as unknown as Record<symbol, unknown>)[symbol]
    return typeof hooks === 'object' && hooks !== null ? hooks as Record<string, unknown> : undefined
  }
}

/** Security requirements of one route, or `undefined` when nothing guards it. */
function routeRequirements (
  route: RouteOptions, inherited: Record<string, unknown> | undefined, schemeNames: ReadonlyMap<MethodName, string[]>
): Requirement[] | undefined {
  const guards: GuardDescription[] = []
  // In the order Fastify runs them: the plugin's hooks before the route's own, hook by hook.
  for (const name of GUARD_HOOKS) {
    if (inherited !== undefined) guards.push(...guardsIn(inherited[name]))
    if (route[name] !== undefined) guards.push(...guardsIn(route[name]))
  }
  if (guards.length === 0) return undefined
  // Several guards on one route must all pass.
  return unique(guards.map((g) => requirementsOf(g, schemeNames)).reduce(both))
}

type SwaggerFunction = (this: unknown, options?: { yaml?: boolean }) => unknown

/** OpenAPI 3.0 allows scopes only for oauth2/openIdConnect schemes; 3.1 for every type. */
function scopesAllowed (doc: Record<string, unknown>, scheme: unknown): boolean {
  if (typeof doc.openapi === 'string' && !doc.openapi.startsWith('3.0')) return true
  const type = isPlainObject(scheme) ? scheme.type : undefined
  return type === 'oauth2' || type === 'openIdConnect'
}

function completeDocument (doc: unknown, schemes: Readonly<Record<string, OpenApiSecurityScheme>>): void {
  // Swagger 2.0 documents keep the extension key as it is: it is valid there too.
  if (!isPlainObject(doc) || typeof doc.openapi !== 'string') return
  const components = isPlainObject(doc.components) ? doc.components : (doc.components = {})
  // A scheme the application declared under the same name is its own choice: kept.
  const declared = { ...schemes, ...(isPlainObject(components.securitySchemes) ? components.securitySchemes : {}) }
  components.securitySchemes = declared
  for (const item of Object.values(isPlainObject(doc.paths) ? doc.paths : {})) {
    if (!isPlainObject(item)) continue
    for (const operation of Object.values(item)) {
      if (!isPlainObject(operation) || !(SECURITY_EXTENSION in operation)) continue
      const requirements = operation[SECURITY_EXTENSION] as Requirement[]
      delete operation[SECURITY_EXTENSION]
      operation.security = requirements.map((r) => Object.fromEntries(Object.entries(r).map(
        ([name, scopes]) => [name, scopesAllowed(doc, declared[name]) ? scopes : []]
      )))
    }
  }
}

/**
 * Wraps `app.swagger()` so that every document it returns is complete. The object form is
 * cached by @fastify/swagger and completed once. YAML is the same completed document in JSON
 * notation, which is YAML 1.2 (we do not bundle a YAML writer).
 */
function wrapSwagger (original: SwaggerFunction, schemes: Readonly<Record<string, OpenApiSecurityScheme>>): SwaggerFunction {
  const completed = new WeakSet<object>()
  const wrapped: SwaggerFunction = function swagger (options) {
    if (options?.yaml === true) return JSON.stringify(wrapped.call(this), null, 2)
    const doc = original.call(this, options)
    if (typeof doc === 'object' && doc !== null && !completed.has(doc)) {
      completeDocument(doc, schemes)
      completed.add(doc)
    }
    return doc
  }
  Object.defineProperty(wrapped, kWrapped, { value: true })
  return wrapped
}

/**
 * Installs the two steps on the plugin's instance. Routes are only remembered (a reference
 * each) until `onReady`; without @fastify/swagger nothing else happens.
 */
export function setupOpenApi (app: FastifyInstance, methods: ReadonlyMap<MethodName, AuthMethod>): void {
  const routes: Array<{ instance: FastifyInstance, route: RouteOptions }> = []
  app.addHook('onRoute', function rememberRoute (this: FastifyInstance, route) {
    routes.push({ instance: this, route })
  })
  app.addHook('onReady', async function documentGuards () {
    const pending = routes.splice(0)
    const swagger = (app as unknown as { swagger?: SwaggerFunction }).swagger
    if (typeof swagger !== 'function' || (swagger as unknown as Record<symbol, unknown>)[kWrapped] === true) return
    const schemes: Record<string, OpenApiSecurityScheme> = {}
    const schemeNames = new Map<MethodName, string[]>()
    for (const [name, method] of methods) {
      const own = method.securitySchemes?.() ?? {}
      Object.assign(schemes, own)
      schemeNames.set(name, Object.keys(own))
    }
    const hooksOf = hookListOf(app)
    for (const { instance, route } of pending) {
      const { security: own, ...schema } = (isPlainObject(route.schema) ? route.schema : {}) as Record<string, unknown>
      // A route that states its own `security` keeps it; it travels the same way, because
      // @fastify/swagger would throw on names of ours that its components do not hold yet.
      const requirements = own ?? routeRequirements(route, hooksOf(instance), schemeNames)
      if (requirements === undefined) continue
      // A copy: one schema object may be shared by several routes with different guards.
      route.schema = { ...schema, [SECURITY_EXTENSION]: requirements } as RouteOptions['schema']
    }
    ;(app as unknown as { swagger: SwaggerFunction }).swagger = wrapSwagger(swagger, schemes)
  })
}
