import type { FastifyRequest } from 'fastify'
import { CallbackError, CallbackTimeoutError, StoreUnavailableError } from './errors.js'
import { events, requestFields } from './events.js'
import type { CallbackName } from './events.js'
import { isThenable } from './outcome.js'
import type { StoreHealth } from '../stores/health.js'

// The one error path for everything the application hands the plugin: callbacks and stores.
// Whatever they throw, the client sees one of our generic errors; the original is only ever
// the `cause`, for the log. Used by the guard and by every route and hook the plugin adds.
// A callback is named by its option path (a constant at each call site) for the
// `callback:error` and `callback:timeout` events; a store's failures go to its `StoreHealth`.

/** Our own request-time errors carry their status on purpose (401/403/503...): they pass through. */
export function isOwnError (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('FST_MULTIAUTH_')
}

/**
 * An error from an application callback, as the client may see it: a generic 500 (or the 5xx it
 * carries) with the original as `cause`. Fastify's default error handler sends `err.message`,
 * which may hold a connection string or a query. A `callback:error` event names `callback`.
 */
export function callbackError (err: unknown, callback: CallbackName, request?: FastifyRequest): unknown {
  if (isOwnError(err)) return err
  const status = (err as { statusCode?: unknown } | null)?.statusCode
  // A 4xx the application threw on purpose (e.g. 403 "Unconfirmed account") is its answer.
  if (typeof status === 'number' && status >= 400 && status < 500) return err
  const channel = events['callback:error']
  if (channel.hasSubscribers) {
    channel.publish(request === undefined
      ? { callback, errorName: errorName(err) }
      : { ...requestFields(request), callback, errorName: errorName(err) })
  }
  const wrapped = new CallbackError({ cause: err })
  // A 5xx it chose (503 "database unavailable") keeps its status, with our generic message.
  if (typeof status === 'number' && status > 500 && status < 600) (wrapped as { statusCode: number }).statusCode = status
  return wrapped
}

/** The error's class name (`TypeError`), or the type of a thrown non-object: never its message or `name` property, which may carry any text. */
function errorName (err: unknown): string {
  if (typeof err !== 'object' || err === null) return err === null ? 'null' : typeof err
  try {
    const name: unknown = (err.constructor as { name?: unknown } | undefined)?.name
    return typeof name === 'string' && name !== '' ? name : 'Object'
  } catch {
    // A proxy or a getter that throws: still an error, still no text.
    return 'Object'
  }
}

function callbackTimedOut (callback: CallbackName, timeoutMs: number, request: FastifyRequest | undefined): Error {
  const channel = events['callback:timeout']
  if (channel.hasSubscribers) {
    channel.publish(request === undefined
      ? { callback, timeoutMs }
      : { ...requestFields(request), callback, timeoutMs })
  }
  return new CallbackTimeoutError()
}

/** An error from a store: whatever a custom store throws counts as the store being unavailable (503). */
export function storeError (err: unknown): unknown {
  return isOwnError(err) ? err : new StoreUnavailableError({ cause: err })
}

/** What `race` rejects with when the time is up: never anything a callback or a store can throw. */
const TIMED_OUT = Symbol('timed out')

/**
 * `pending`, or a rejection with TIMED_OUT after `timeoutMs`. The timer exists only while
 * something is pending, so synchronous answers never come here.
 */
async function race<T> (timeoutMs: number, pending: PromiseLike<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(reject, timeoutMs, TIMED_OUT)
  })
  try {
    return await Promise.race([pending, limit])
  } finally {
    // A callback that loses the race and rejects later is not an unhandled rejection:
    // Promise.race already subscribed to it.
    clearTimeout(timer)
  }
}

/**
 * Waits for `pending` at most `timeoutMs` (0: no bound); a timeout rejects with `onTimeout()`,
 * any other rejection goes through `mapError`.
 */
export async function bounded<T> (timeoutMs: number, pending: PromiseLike<T>, mapError: (err: unknown) => unknown, onTimeout: () => Error): Promise<T> {
  try {
    return await (timeoutMs === 0 ? pending : race(timeoutMs, pending))
  } catch (err) {
    throw err === TIMED_OUT ? mapError(onTimeout()) : mapError(err)
  }
}

/** Bounds an asynchronous application callback (`callback`, its option path) by `timeoutMs`; its errors become our generic ones. */
export async function boundedCallback<T> (timeoutMs: number, pending: PromiseLike<T>, callback: CallbackName, request: FastifyRequest | undefined): Promise<T> {
  try {
    return await (timeoutMs === 0 ? pending : race(timeoutMs, pending))
  } catch (err) {
    throw err === TIMED_OUT ? callbackTimedOut(callback, timeoutMs, request) : callbackError(err, callback, request)
  }
}

/**
 * Bounds an asynchronous store call by `timeoutMs`; a failure or a timeout is a 503, and is
 * reported to the store's `health` (none for the checks made at registration). A success costs
 * one boolean read.
 */
export async function boundedStore<T> (timeoutMs: number, pending: PromiseLike<T>, health: StoreHealth | undefined): Promise<T> {
  let value: T
  try {
    value = await (timeoutMs === 0 ? pending : race(timeoutMs, pending))
  } catch (err) {
    const timedOut = err === TIMED_OUT
    health?.failed(timedOut ? 'timeout' : 'error')
    throw timedOut ? new StoreUnavailableError() : storeError(err)
  }
  if (health?.down === true) health.recovered()
  return value
}

/**
 * Calls an application callback (`name`, its option path) under the one error path. A
 * synchronous answer stays synchronous (no promise, no timer: the hot path); a synchronous throw
 * is mapped at once; a promise (or any thenable) is bounded by `timeoutMs`. `request`, when
 * there is one, places the `callback:*` events.
 */
export function runCallback<A extends unknown[], R> (timeoutMs: number, name: CallbackName, request: FastifyRequest | undefined, callback: (...args: A) => R | PromiseLike<R>, ...args: A): R | Promise<R> {
  let result
  try {
    result = callback(...args)
  } catch (err) {
    throw callbackError(err, name, request)
  }
  return isThenable(result) ? boundedCallback(timeoutMs, result, name, request) : result
}

/** `runCallback`, always as a promise: for routes and helpers that await anyway. */
export async function callAsync<A extends unknown[], R> (timeoutMs: number, name: CallbackName, request: FastifyRequest | undefined, callback: (...args: A) => R | PromiseLike<R>, ...args: A): Promise<R> {
  return await runCallback(timeoutMs, name, request, callback, ...args)
}
