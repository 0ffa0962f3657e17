import type { FastifyInstance, RouteOptions } from 'fastify'
import { MultiauthOptionError } from '../core/errors.js'
import type { AuthMethod, MethodName, OpenApiSecurityScheme } from '../core/types.js'
import { isPlainObject } from '../core/validate.js'

// OpenAPI for guarded routes, through @fastify/swagger's public `transform` and `transformObject`
// options, which `multiauthOpenApi(app, options)` adds to the application's own swagger options
// (wrapping its own transforms). @fastify/swagger calls them when it builds a document, after
// `ready`, so the order in which the two plugins are registered does not matter:
//  - `transform`, per route: the route's security requirements, computed from the guards in the
//    hooks of its route options (a route's own `schema.security` wins). Our schemes are put in the
//    document's components first, because @fastify/swagger looks up every scheme an operation
//    (or the global `security`) names while it builds that operation.
//  - `transformObject`, per document: the same schemes, also when no route was guarded.
// No Fastify internals: hooks added with `addHook` are not in the route options, so they are not
// seen (docs/openapi.md says how to declare such routes). Nothing happens at request time.

/** What a guard hook tells the document: set once, when the guard is built. */
export interface GuardDescription {
  methods: readonly AuthMethod[]
  all: boolean
  scopes: readonly string[]
  optional: boolean
}

/** A Security Requirement Object: scheme name → scopes (every entry of one object is required). */
type Requirement = Record<string, string[]>
type Schemes = Record<string, OpenApiSecurityScheme>

/** What the plugin leaves on its instance for the transforms: its configured methods. */
interface OpenApiState {
  readonly methods: ReadonlyMap<MethodName, AuthMethod>
  /** Every configured scheme, and each method's scheme names; read on the first document. */
  schemes?: { all: Schemes, names: ReadonlyMap<MethodName, string[]> }
}

// Registry symbols, so that the ESM and the CommonJS build of this package understand each other.
const kGuard = Symbol.for('fastify-multiauth.guard')
const kState = Symbol.for('fastify-multiauth.openapi')
/** Hooks that run before the handler and can refuse the request. */
const GUARD_HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler'] as const

/** Marks a guard hook, so that routes using it can be documented. Costs nothing per request. */
export function describeGuard<T extends object> (hook: T, description: GuardDescription): T {
  Object.defineProperty(hook, kGuard, { value: description })
  return hook
}

function guardsIn (hooks: unknown): GuardDescription[] {
  const list = Array.isArray(hooks) ? hooks : [hooks]
  return list.flatMap((hook) => {
    const guard = typeof hook === 'function' ? (hook as unknown as Record<symbol, GuardDescription | undefined>)[kGuard] : undefined
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

/** Security requirements of one route from the hooks of its options, or `undefined` when none is a guard. */
function routeRequirements (route: RouteOptions, schemeNames: ReadonlyMap<MethodName, string[]>): Requirement[] | undefined {
  const guards = GUARD_HOOKS.flatMap((name) => guardsIn(route[name]))
  if (guards.length === 0) return undefined
  // Several guards on one route must all pass.
  return unique(guards.map((g) => requirementsOf(g, schemeNames)).reduce(both))
}

/** OpenAPI 3.0 allows scopes only for oauth2/openIdConnect schemes; 3.1 for every type. */
function scopesAllowed (version: string, scheme: unknown): boolean {
  if (!version.startsWith('3.0')) return true
  const type = isPlainObject(scheme) ? scheme.type : undefined
  return type === 'oauth2' || type === 'openIdConnect'
}

/** An OpenAPI 3 document being built; `undefined` for Swagger 2.0, which is left as generated. */
function openApiDocument (input: unknown): (Record<string, unknown> & { openapi: string }) | undefined {
  const doc = isPlainObject(input) ? input.openapiObject : undefined
  return isPlainObject(doc) && typeof doc.openapi === 'string' ? doc as Record<string, unknown> & { openapi: string } : undefined
}

/** Makes `app` answer `multiauthOpenApi`'s transforms: a decoration, inherited by child contexts. */
export function setupOpenApi (app: FastifyInstance, methods: ReadonlyMap<MethodName, AuthMethod>): void {
  const state: OpenApiState = { methods }
  app.decorate(kState, state)
}

function schemesOf (state: OpenApiState): NonNullable<OpenApiState['schemes']> {
  if (state.schemes !== undefined) return state.schemes
  const all: Schemes = {}
  const names = new Map<MethodName, string[]>()
  for (const [name, method] of state.methods) {
    const own = method.securitySchemes?.() ?? {}
    Object.assign(all, own)
    names.set(name, Object.keys(own))
  }
  state.schemes = { all, names }
  return state.schemes
}

/** The parts of @fastify/swagger's transform input this module reads (it does not depend on @fastify/swagger). */
interface TransformInput { schema?: unknown, url: string, route: RouteOptions, openapiObject?: unknown, swaggerObject?: unknown }
type Transform = (input: TransformInput) => { schema?: unknown, url?: string } | undefined
type TransformObject = (input: { openapiObject?: unknown, swaggerObject?: unknown }) => unknown

function optionalFunction<T> (value: unknown, path: string): T | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'function') throw new MultiauthOptionError(`multiauthOpenApi: ${path} must be a function`)
  return value as T
}

/**
 * The application's @fastify/swagger options, completed with `transform` and `transformObject`
 * that document fastify-multiauth's security schemes and each guarded route's requirements.
 * Its own `transform` runs first (we document the schema it returns), its own `transformObject`
 * last (it sees the completed document). Works whichever plugin is registered first; `app` is
 * the instance fastify-multiauth is registered on, or a child of it.
 */
export function multiauthOpenApi<O extends object> (app: FastifyInstance, options: O): O {
  if (!isPlainObject(options)) throw new MultiauthOptionError('multiauthOpenApi: the @fastify/swagger options must be an object')
  const ownTransform = optionalFunction<Transform>(options.transform, 'options.transform')
  const ownTransformObject = optionalFunction<TransformObject>(options.transformObject, 'options.transformObject')
  if (options.mode !== undefined && options.mode !== 'dynamic') {
    throw new MultiauthOptionError('multiauthOpenApi: options.mode must be \'dynamic\' (a static specification is not generated from the routes)')
  }
  const completed = new WeakSet<object>()

  function state (): OpenApiState {
    const found = (app as unknown as Record<symbol, OpenApiState | undefined>)[kState]
    if (found === undefined) throw new MultiauthOptionError('multiauthOpenApi(app, options): fastify-multiauth is not registered on app or a parent of it')
    return found
  }

  /** Our schemes in the document's components, once per document; a scheme of the application's own under the same name is kept. */
  function addSchemes (doc: Record<string, unknown>): Schemes {
    const components = isPlainObject(doc.components) ? doc.components : (doc.components = {})
    if (!completed.has(doc)) {
      // A new object: @fastify/swagger's document shares the application's `securitySchemes` option.
      components.securitySchemes = { ...schemesOf(state()).all, ...(isPlainObject(components.securitySchemes) ? components.securitySchemes : {}) }
      completed.add(doc)
    }
    return components.securitySchemes as Schemes
  }

  function transform (input: TransformInput): { schema: unknown, url: string } {
    const result = ownTransform?.(input)
    // @fastify/swagger's rule: a missing schema or url in a transform's result means the route's.
    const schema = result?.schema || input.schema
    const url = result?.url || input.url
    const doc = openApiDocument(input)
    if (doc === undefined) return { schema, url }
    const declared = addSchemes(doc)
    if (isPlainObject(schema) && schema.security !== undefined) return { schema, url }
    const requirements = routeRequirements(input.route, schemesOf(state()).names)
    if (requirements === undefined) return { schema, url }
    const security = requirements.map((r) => Object.fromEntries(Object.entries(r).map(
      ([name, scopes]) => [name, scopesAllowed(doc.openapi, declared[name]) ? scopes : []]
    )))
    // A copy: the route's schema (possibly shared by several routes) is left as it is.
    return { schema: { ...(isPlainObject(schema) ? schema : {}), security }, url }
  }

  function transformObject (input: { openapiObject?: unknown, swaggerObject?: unknown }): unknown {
    const doc = openApiDocument(input)
    if (doc !== undefined) addSchemes(doc)
    return ownTransformObject === undefined ? (input.openapiObject ?? input.swaggerObject) : ownTransformObject(input)
  }

  return { ...options, transform, transformObject }
}
