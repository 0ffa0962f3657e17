import { channel, subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import type { MethodName, MultiauthUser } from './types.js'

// Security events on `node:diagnostics_channel`, one channel per event (docs/events.md). The
// channels are made once, here; every publisher checks `hasSubscribers` before it builds a
// payload, so an application that does not listen pays one property read per event site.
// Payloads are plain objects of ids, names and fixed codes: never a credential, a token, a
// password, a cookie, a raw header or text from an application callback.

/**
 * Why a credential was refused (the `reason` of a `refused` event): a fixed set, so a metric
 * label or an alert never carries free text. `missing`: no credentials of any method the guard
 * accepts were presented (a 401 without a refused credential).
 */
export const REFUSAL_REASONS = [
  'missing',
  'malformed',
  'empty-username',
  'unknown-user',
  'wrong-password',
  'refused-by-callback',
  'wrong-prefix',
  'wrong-environment',
  'unknown-key',
  'revoked',
  'expired',
  'rotated',
  'not-yet-valid',
  'invalid-signature',
  'algorithm',
  'unknown-kid',
  'unusable-key',
  'claims',
  'missing-claim',
  'not-access-token',
  'untrusted-issuer',
  'logged-out',
  'not-oauth2',
  'different-users',
  'cross-site',
  'verifier'
] as const
export type RefusalReason = typeof REFUSAL_REASONS[number]

/** Where a request-bound event happened. `route` is the route's URL pattern (`/users/:id`), never the raw URL. */
export interface RequestFields {
  requestId: string
  route: string | undefined
  ip: string
}

export interface AuthenticatedEvent extends RequestFields {
  method: MethodName
  /** The user's `id` as a string, when the user record has a string or number `id`. */
  userId: string | undefined
  keyId?: string
  provider?: string
  issuer?: string
}

export interface RefusedEvent extends RequestFields {
  /** The method whose credentials were refused; `undefined` when `reason` is `missing`. */
  method: MethodName | undefined
  reason: RefusalReason
}

export interface ForbiddenEvent extends RequestFields {
  method: MethodName
  userId: string | undefined
  /** What was missing: a role or scope the route requires, or a same-site request (session cookie sent cross-site). */
  missing: 'role' | 'scope' | 'same-site'
}

export interface RateLimitedEvent extends RequestFields {
  /** Which budget was spent: failures per client IP, failures per Basic username, or the per-credential limit. */
  budget: 'failures-per-ip' | 'failures-per-user' | 'per-credential'
  /** Seconds until the budget has room again (the `Retry-After` sent). */
  retryAfter: number
}

/** Events of the token, session and OAuth2 flows may happen outside a request (`app.multiauth.issueTokens`): then the request fields are absent. */
export type MaybeRequestFields = Partial<RequestFields>

/**
 * Token events name the user by the token's subject (`sub`, from `token.claims(user)`), the one id
 * every token flow knows, revocations included. Every access token minted fires exactly one of
 * `token:issued` (a login: `POST /tokens`, `app.authTokens.issue`) and `token:refreshed`.
 */
export interface TokenIssuedEvent extends MaybeRequestFields {
  /** The token's `sub`. */
  userId: string
  /** The access token's `jti` (an identifier, not a credential: it cannot authenticate). */
  jti: string
  /** The refresh token family, when a refresh token was issued with it. */
  familyId: string | undefined
}

export interface TokenRefreshedEvent extends MaybeRequestFields {
  userId: string
  familyId: string
  /** The new access token's `jti`. */
  jti: string
}

export interface TokenRefreshReusedEvent extends MaybeRequestFields {
  userId: string
  /** The family the reused refresh token belonged to: revoked as a whole. */
  familyId: string
}

export interface TokenRevokedEvent extends MaybeRequestFields {
  userId: string | undefined
  /** What was revoked: one access token (by `jti`), or a refresh token's whole family. */
  kind: 'access' | 'refresh'
  jti?: string
  familyId?: string
}

export interface TokenRevokedAllEvent extends MaybeRequestFields {
  userId: string
}

/** Session events name the user by the id the session stores (`session.userId(user)`, by default `String(user.id)`). */
export interface SessionLoginEvent extends RequestFields {
  userId: string
  /** The OAuth2 provider, for a session an OAuth2 login started. */
  provider?: string
}

export interface SessionLogoutEvent extends RequestFields {
  userId: string
}

export interface SessionExpiredEvent extends RequestFields {
  userId: string
  /** A session past its absolute timeout. (An idle session expires in the store by its TTL; the plugin never sees it again.) */
  reason: 'absolute'
}

export interface OAuth2LoginEvent extends RequestFields {
  provider: string
  /** The id the session started by this login stores (as in `session:login`). */
  userId: string
}

/**
 * Why an OAuth2 login was refused (the `reason` of `oauth2:refused`): a fixed set, one per refusal
 * path of the login routes.
 * - `redirect`: the login start named a `next` path that is not allowed (400).
 * - `provider-denied`: the provider came back with `error=` (the user declined, say).
 * - `missing-code`: the callback came without a code.
 * - `no-flow`: no login-flow cookie: the login did not start in this browser (login CSRF).
 * - `mix-up`: the login started with another provider, or the response's `iss` is not this provider (RFC 9207).
 * - `state`: the state does not match this browser's login.
 * - `code-refused`: the token endpoint refused the code (replayed, expired, wrong PKCE verifier).
 * - `id-token`: the id_token is missing or invalid (signature, issuer, audience, age, `azp`, `sub`).
 * - `nonce`: the id_token's nonce is not the one this browser's login sent.
 * - `no-user`: `oauth2.findUser` returned no user.
 * - `provider-error`: the provider failed or answered something unusable (502).
 */
export const OAUTH2_REFUSAL_REASONS = [
  'redirect',
  'provider-denied',
  'missing-code',
  'no-flow',
  'mix-up',
  'state',
  'code-refused',
  'id-token',
  'nonce',
  'no-user',
  'provider-error'
] as const
export type OAuth2RefusalReason = typeof OAUTH2_REFUSAL_REASONS[number]

export interface OAuth2RefusedEvent extends RequestFields {
  provider: string
  reason: OAuth2RefusalReason
}

/**
 * A key made by `generateApiKey` passed every check of `apiKey.findKey`'s record: it was used,
 * even if the route's roles or scopes, or the key's rate limit, then refuse the request.
 */
export interface ApiKeyUsedEvent extends RequestFields {
  /** The key's public id (`apiKeyId(key)`), never the key. */
  keyId: string
  /** The environment written in the key (`live`, `test`). */
  environment: string
  userId: string | undefined
}

export interface StoreUnavailableEvent {
  /**
   * The store's class name: `RedisStore`, or the class of the application's own `MultiauthStore` or
   * `session.store` (`'custom'` for a plain object). (`MemoryStore` never fails.)
   */
  store: string
  /** `timeout`: a call was not answered within its bound (RedisStore `commandTimeout`, else `callbackTimeout`); `error`: a call failed. */
  cause: 'timeout' | 'error'
}

export interface StoreRecoveredEvent {
  store: string
  /** How long the store was unavailable, from the first failure to the first success after it. */
  unavailableMs: number
}

/**
 * An application callback, by its option path: a fixed set, so a metric label never carries free
 * text. For a verification the guard runs, the callback of the method whose credentials were being
 * verified (the whole verification is what `callbackTimeout` bounds).
 */
export type CallbackName =
  | 'basic.verify' | 'basic.findCredential' | 'basic.onRehash'
  | 'apiKey.verify' | 'apiKey.findKey' | 'apiKey.usage.onUsed'
  | 'token.findUser' | 'token.claims'
  | 'session.findUser' | 'session.userId'
  | 'oauth2.findUser'
  | 'roles'
  | 'rateLimit.failuresPerUser.normalizeUsername'

export interface CallbackErrorEvent extends MaybeRequestFields {
  /** The option path of the callback (`basic.findCredential`, `token.claims`, `roles`...). */
  callback: CallbackName
  /** The error's class name (`Error`, `TypeError`...): never its message, which may hold a connection string. */
  errorName: string
}

export interface CallbackTimeoutEvent extends MaybeRequestFields {
  callback: CallbackName
  timeoutMs: number
}

/** Every event, by the part of its channel name after `fastify-multiauth:`. */
export interface MultiauthEvents {
  'authenticated': AuthenticatedEvent
  'refused': RefusedEvent
  'forbidden': ForbiddenEvent
  'rate-limited': RateLimitedEvent
  'token:issued': TokenIssuedEvent
  'token:refreshed': TokenRefreshedEvent
  'token:refresh-reused': TokenRefreshReusedEvent
  'token:revoked': TokenRevokedEvent
  'token:revoked-all': TokenRevokedAllEvent
  'session:login': SessionLoginEvent
  'session:logout': SessionLogoutEvent
  'session:expired': SessionExpiredEvent
  'oauth2:login': OAuth2LoginEvent
  'oauth2:refused': OAuth2RefusedEvent
  'api-key:used': ApiKeyUsedEvent
  'store:unavailable': StoreUnavailableEvent
  'store:recovered': StoreRecoveredEvent
  'callback:error': CallbackErrorEvent
  'callback:timeout': CallbackTimeoutEvent
}
export type MultiauthEventName = keyof MultiauthEvents

/** A channel that takes only its event's payload. */
export interface EventChannel<T> {
  readonly name: string
  readonly hasSubscribers: boolean
  publish (message: T): void
}

export const CHANNEL_PREFIX = 'fastify-multiauth:'

const EVENT_NAMES: readonly MultiauthEventName[] = [
  'authenticated', 'refused', 'forbidden', 'rate-limited',
  'token:issued', 'token:refreshed', 'token:refresh-reused', 'token:revoked', 'token:revoked-all',
  'session:login', 'session:logout', 'session:expired',
  'oauth2:login', 'oauth2:refused',
  'api-key:used',
  'store:unavailable', 'store:recovered',
  'callback:error', 'callback:timeout'
]

/** The full channel name of each event, e.g. `MULTIAUTH_CHANNELS['token:refresh-reused']` is `'fastify-multiauth:token:refresh-reused'`. */
export const MULTIAUTH_CHANNELS = Object.freeze(Object.fromEntries(
  EVENT_NAMES.map((name) => [name, CHANNEL_PREFIX + name])
)) as { readonly [K in MultiauthEventName]: string }

/** The channel objects, made once. `diagnostics_channel.channel(name)` returns the same object for a name in the whole process, so ESM and CJS copies of the plugin publish on the same channels. */
export const events = Object.freeze(Object.fromEntries(
  EVENT_NAMES.map((name) => [name, channel(CHANNEL_PREFIX + name)])
)) as unknown as { readonly [K in MultiauthEventName]: EventChannel<MultiauthEvents[K]> }

/**
 * The context object of one guard run on the `tracing:fastify-multiauth:authenticate` channels
 * (start, end, asyncStart, asyncEnd, error), published as Node's `traceSync`/`tracePromise` do:
 * `start`, then `end` when the guard's check returns; when it returned a promise, `asyncStart` and
 * `asyncEnd` once that settles; `error` (before `end`, or before `asyncStart`) when it threw or
 * rejected. `outcome` and `method` are set before `end` for a synchronous answer, else before
 * `asyncEnd`: an `end` without `outcome` means `asyncEnd` follows (close a span there). `error`
 * (TracingChannel's own field) holds the error the guard answered with, one of the plugin's own
 * errors. Runs are published only while someone subscribes to one of the five channels.
 */
export interface AuthenticateContext {
  requestId: string
  route: string | undefined
  /** The methods the guard accepts, in its order. */
  methods: readonly MethodName[]
  /**
   * How the guard ended: admitted (`authenticated`), admitted without credentials (`anonymous`, an
   * optional guard), a CORS preflight let through; or by the status of its error: 401 and 400
   * `refused`, 403 `forbidden`, 429 `rate-limited`, anything else `error` (a callback error, a
   * store or callback timeout: 5xx).
   */
  outcome?: 'authenticated' | 'anonymous' | 'preflight' | 'refused' | 'forbidden' | 'rate-limited' | 'error'
  /** The method that authenticated the request (also set for a 403: the user was authenticated). */
  method?: MethodName
  error?: unknown
}

/**
 * Subscribes `listener` to one event with its payload typed (`diagnostics_channel.subscribe`
 * hands a listener `unknown`); returns the function that unsubscribes. The same as
 * `subscribe(MULTIAUTH_CHANNELS[name], listener)`: a listener runs synchronously, at the event.
 */
export function subscribeMultiauth<K extends MultiauthEventName> (name: K, listener: (event: MultiauthEvents[K]) => void): () => void {
  const channelName = MULTIAUTH_CHANNELS[name]
  if (typeof channelName !== 'string') throw new TypeError(`subscribeMultiauth: unknown event "${String(name)}" (known: ${EVENT_NAMES.join(', ')})`)
  if (typeof listener !== 'function') throw new TypeError('subscribeMultiauth: the listener must be a function')
  // The payload is what the publisher of that channel built: the type is the channel's contract.
  const onMessage = (message: unknown): void => { listener(message as MultiauthEvents[K]) }
  subscribe(channelName, onMessage)
  return () => { unsubscribe(channelName, onMessage) }
}

export const AUTHENTICATE_TRACING_CHANNEL = 'fastify-multiauth:authenticate'
export const authenticateTracing = tracingChannel<unknown, AuthenticateContext>(AUTHENTICATE_TRACING_CHANNEL)

/** The request fields of an event; call only after checking `hasSubscribers`. */
export function requestFields (request: FastifyRequest): RequestFields {
  return { requestId: request.id, route: request.routeOptions.url, ip: request.ip }
}

/** A user's `id` as a string, when it is a string or a number; anything else is no id. */
export function userIdOf (user: MultiauthUser | null | undefined): string | undefined {
  const id = (user as { id?: unknown } | null | undefined)?.id
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? String(id) : undefined
}
