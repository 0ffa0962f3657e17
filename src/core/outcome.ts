// What a method's verification answers besides a success, and how the guard tells a promise from a value.
import type { RefusalReason } from './events.js'

/**
 * A refused credential: `code` is the fixed reason of the `refused` event (docs/events.md),
 * `reason` the text that goes to the log (never to the client).
 * With `forbidden`, the credentials were valid but this request may not use them
 * (a cross-site POST with the session cookie): a 403 with that error, unless another
 * method of the guard admits the request.
 */
export class AuthFailure {
  constructor (readonly code: RefusalReason, readonly reason: string, readonly forbidden?: () => Error) {}
}

/**
 * True for any promise-like value, not only native promises: a callback may return a
 * query builder or another library's thenable, which must be awaited, never taken for a user.
 */
export function isThenable<T> (value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function'
}

/**
 * Sets `request.user`, which the plugin fills at runtime but whose type it does not declare
 * (opt-in: `fastify-multiauth/request-user`; @fastify/jwt and @fastify/passport declare their own).
 */
export function setRequestUser (request: object, user: unknown): void {
  (request as { user: unknown }).user = user
}
