// What a method's verification answers besides a success, and how the guard tells a promise from a value.

/**
 * A refused credential, with the reason that goes to the log (never to the client).
 * With `forbidden`, the credentials were valid but this request may not use them
 * (a cross-site POST with the session cookie): a 403 with that message, unless another
 * method of the guard admits the request.
 */
export class AuthFailure {
  constructor (readonly reason: string, readonly forbidden?: string) {}
}

/**
 * True for any promise-like value, not only native promises: a callback may return a
 * query builder or another library's thenable, which must be awaited, never taken for a user.
 */
export function isThenable<T> (value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function'
}
