import { CallbackError, CallbackTimeoutError, StoreUnavailableError } from './errors.js'
import { isThenable } from './outcome.js'

// The one error path for everything the application hands the plugin: callbacks and stores.
// Whatever they throw, the client sees one of our generic errors; the original is only ever
// the `cause`, for the log. Used by the guard and by every route and hook the plugin adds.

/** Our own request-time errors carry their status on purpose (401/403/503...): they pass through. */
export function isOwnError (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('FST_MULTIAUTH_')
}

/**
 * An error from an application callback, as the client may see it: a generic 500 (or the 5xx it
 * carries) with the original as `cause`. Fastify's default error handler sends `err.message`,
 * which may hold a connection string or a query.
 */
export function callbackError (err: unknown): unknown {
  if (isOwnError(err)) return err
  const status = (err as { statusCode?: unknown } | null)?.statusCode
  // A 4xx the application threw on purpose (e.g. 403 "Unconfirmed account") is its answer.
  if (typeof status === 'number' && status >= 400 && status < 500) return err
  const wrapped = new CallbackError({ cause: err })
  // A 5xx it chose (503 "database unavailable") keeps its status, with our generic message.
  if (typeof status === 'number' && status > 500 && status < 600) (wrapped as { statusCode: number }).statusCode = status
  return wrapped
}

/** An error from a store: whatever a custom store throws counts as the store being unavailable (503). */
export function storeError (err: unknown): unknown {
  return isOwnError(err) ? err : new StoreUnavailableError({ cause: err })
}

/**
 * Waits for `pending` at most `timeoutMs` (0: no bound); a timeout rejects with `onTimeout()`,
 * any other rejection goes through `mapError`. The timer exists only while something is pending,
 * so synchronous answers never come here.
 */
export async function bounded<T> (timeoutMs: number, pending: PromiseLike<T>, mapError: (err: unknown) => unknown, onTimeout: () => Error): Promise<T> {
  if (timeoutMs === 0) {
    try {
      return await pending
    } catch (err) {
      throw mapError(err)
    }
  }
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(onTimeout()), timeoutMs)
  })
  try {
    return await Promise.race([pending, limit])
  } catch (err) {
    throw mapError(err)
  } finally {
    // A callback that loses the race and rejects later is not an unhandled rejection:
    // Promise.race already subscribed to it.
    clearTimeout(timer)
  }
}

const callbackTimeout = (): Error => new CallbackTimeoutError()
const storeTimeout = (): Error => new StoreUnavailableError()

/** Bounds an asynchronous application callback by `timeoutMs`; its errors become our generic ones. */
export async function boundedCallback<T> (timeoutMs: number, pending: PromiseLike<T>): Promise<T> {
  return await bounded(timeoutMs, pending, callbackError, callbackTimeout)
}

/** Bounds an asynchronous store call by `timeoutMs`; a failure or a timeout is a 503. */
export async function boundedStore<T> (timeoutMs: number, pending: PromiseLike<T>): Promise<T> {
  return await bounded(timeoutMs, pending, storeError, storeTimeout)
}

/**
 * Calls an application callback under the one error path. A synchronous answer stays
 * synchronous (no promise, no timer: the hot path); a synchronous throw is mapped at once;
 * a promise (or any thenable) is bounded by `timeoutMs`.
 */
export function runCallback<A extends unknown[], R> (timeoutMs: number, callback: (...args: A) => R | PromiseLike<R>, ...args: A): R | Promise<R> {
  let result
  try {
    result = callback(...args)
  } catch (err) {
    throw callbackError(err)
  }
  return isThenable(result) ? boundedCallback(timeoutMs, result) : result
}

/** `runCallback`, always as a promise: for routes and helpers that await anyway. */
export async function callAsync<A extends unknown[], R> (timeoutMs: number, callback: (...args: A) => R | PromiseLike<R>, ...args: A): Promise<R> {
  return await runCallback(timeoutMs, callback, ...args)
}
