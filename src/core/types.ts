import type { CallbackName } from './events.js'
import type { AuthFailure } from './outcome.js'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** The five authentication methods, by the names the guard and `request.auth.method` use. */
export type MethodName = 'basic' | 'token' | 'apiKey' | 'session' | 'oauth2'

/**
 * Your user type. Extend it by declaration merging:
 * `declare module 'fastify-multiauth' { interface MultiauthUser { id: string } }`
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface MultiauthUser {}

/** What a lookup callback returns to refuse: any falsy value. */
export type Falsy = null | undefined | false | 0 | ''
/** A callback may answer synchronously, with a promise, or with any thenable (a query builder). */
export type Awaitable<T> = T | PromiseLike<T>

interface AuthInfoBase {
  user: MultiauthUser
  /** Roles from the `roles` option, else those the credential carries (a trusted issuer's `roles` claim); `[]` when none. */
  roles: readonly string[]
  /** Scopes granted by the credential (API key record, token `scope` claim); `[]` when none. */
  scopes: readonly string[]
}

/** `request.auth`, a discriminated union on `method`. */
export type AuthInfo =
  | (AuthInfoBase & { method: 'basic' })
  | (AuthInfoBase & { method: 'token', claims: Record<string, unknown>, issuer?: string })
  | (AuthInfoBase & { method: 'apiKey', keyId?: string })
  | (AuthInfoBase & { method: 'session', provider?: string })
  | (AuthInfoBase & { method: 'oauth2', provider: string, claims?: Record<string, unknown> })

/** A role requirement as in Flask-HTTPAuth: `['a', 'b', ['c', 'd']]` admits a, or b, or (c and d). */
export type RoleRequirement = ReadonlyArray<string | readonly string[]>

export interface GuardOptions {
  methods: readonly MethodName[]
  /** `'any'` (default): the first method whose credentials are present and valid wins. `'all'`: every method must succeed for the same user. */
  mode?: 'any' | 'all'
  roles?: RoleRequirement
  /** Every listed scope is required (the OAuth convention). */
  scopes?: readonly string[]
  /** Admit a request that carries no credentials, with `request.user === null`. Bad credentials are still refused. */
  optional?: boolean
}

export type GuardSpec = readonly MethodName[] | GuardOptions

export type UserRoles = string | readonly string[] | ReadonlySet<string> | null | undefined

/** What a method hands the guard when its credentials are valid. */
export interface AuthSuccess {
  user: MultiauthUser
  /** Usually the method's own name; Basic with `allowToken` reports `'token'`. */
  method: MethodName
  scopes?: readonly string[]
  claims?: Record<string, unknown>
  keyId?: string
  provider?: string
  /** The trusted issuer (`token.issuers`) whose token this was. */
  issuer?: string
  /** Roles the credential itself carries (a trusted issuer's `roles` mapping); used when the `roles` option is not set. */
  roles?: readonly string[]
  /** A per-credential budget for the keyed rate limit (an API key record's `rateLimit`). */
  rateLimit?: { max: number, timeWindow?: number }
}


/** An OpenAPI 3 Security Scheme Object: how a method describes itself in the application's document. */
export type OpenApiSecurityScheme =
  | { type: 'http', scheme: 'basic' | 'bearer', bearerFormat?: string, description?: string }
  | { type: 'apiKey', in: 'header' | 'query' | 'cookie', name: string, description?: string }
  | { type: 'openIdConnect', openIdConnectUrl: string, description?: string }
  | {
    type: 'oauth2'
    flows: { authorizationCode: { authorizationUrl: string, tokenUrl: string, scopes: Record<string, string> } }
    description?: string
  }

/**
 * One authentication method, as the guard sees it. Each file under `src/methods/`
 * builds one of these from its options at registration time.
 */
export interface AuthMethod {
  readonly name: MethodName
  /** WWW-Authenticate challenge for a 401 when this method's credentials were absent. */
  readonly challenge?: string
  /** Challenge when credentials were presented and refused (e.g. `error="invalid_token"`). Defaults to `challenge`. */
  readonly invalidChallenge?: string
  /** Challenge for a 403 (e.g. Bearer `error="insufficient_scope"`). None by default. */
  readonly forbiddenChallenge?: string
  /**
   * Reads the credentials synchronously. Returns `undefined` when they are absent;
   * throws a `BadRequestError` when they are present but cannot be decoded.
   */
  extract (request: FastifyRequest): unknown
  /** Checks present credentials. Rejects (or throws) only for server-side failures. */
  verify (credentials: any, request: FastifyRequest, reply: FastifyReply): AuthSuccess | AuthFailure | Promise<AuthSuccess | AuthFailure>
  /**
   * The option path of the application callback `verify` runs for these credentials (a constant,
   * e.g. `apiKey.findKey`), naming it in the `callback:error` and `callback:timeout` events.
   * Read only when a verification failed or is bounded. Default: the method's usual callback
   * (`basic.verify`, `token.findUser`, `apiKey.verify`, `session.findUser`).
   */
  callbackOf? (credentials: unknown): CallbackName
  /** Registration-time work: registering @fastify/jwt, routes, hooks. Runs once. */
  setup? (app: FastifyInstance): Promise<void> | void
  /** True when this method's successes may carry `roles` (so `authGuard({ roles })` works without the `roles` option). */
  readonly mapsRoles?: boolean
  /**
   * The OpenAPI security schemes of this method, by scheme name; several entries are
   * alternatives (an API key in the header or in the query). Read once, after `setup`.
   */
  securitySchemes? (): Readonly<Record<string, OpenApiSecurityScheme>>
}
