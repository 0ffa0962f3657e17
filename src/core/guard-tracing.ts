import type { FastifyReply, FastifyRequest } from 'fastify'
import { authenticateTracing } from './events.js'
import type { AuthenticateContext } from './events.js'
import type { GuardRun } from './guard.js'
import { isPreflight } from './preflight.js'
import type { MethodName } from './types.js'

// Each guard run as a run of the `tracing:fastify-multiauth:authenticate` channels, with the
// semantics of Node's `tracingChannel.traceSync`/`tracePromise`: `start` (through `runStores`, so
// an instrumentation's bound AsyncLocalStorage holds during the run), `end` when the check
// returns; when it returned a promise, `asyncStart` and `asyncEnd` once that settles; `error`
// (before `end` or `asyncStart`) when it throws or rejects. Unlike `tracePromise`, a check that
// answers synchronously stays synchronous: the guard still calls `done()` at once.

const { start, end, asyncStart, asyncEnd, error } = authenticateTracing

/**
 * Whether anyone listens on any of the five channels (what `TracingChannel.hasSubscribers` reads
 * in Node 22, which @types/node does not declare yet). Checked once per guard run.
 */
export function tracingActive (): boolean {
  return start.hasSubscribers || end.hasSubscribers || asyncStart.hasSubscribers || asyncEnd.hasSubscribers || error.hasSubscribers
}

/** Runs `check` as one traced authentication. Call only when `tracingActive()`. */
export function traceGuard (check: GuardRun, methods: readonly MethodName[], request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
  const context: AuthenticateContext = { requestId: request.id, route: request.routeOptions.url, methods }
  return start.runStores(context, traced, undefined, check, context, request, reply)
}

function traced (check: GuardRun, context: AuthenticateContext, request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
  let pending: Promise<void> | undefined
  try {
    pending = check(request, reply)
  } catch (err) {
    failed(context, err, request)
    end.publish(context)
    throw err
  }
  if (pending === undefined) {
    admitted(context, request)
    end.publish(context)
    return undefined
  }
  end.publish(context)
  return pending.then(() => {
    admitted(context, request)
    asyncStart.publish(context)
    asyncEnd.publish(context)
  }, (err: unknown) => {
    failed(context, err, request)
    asyncStart.publish(context)
    asyncEnd.publish(context)
    throw err
  })
}

/** The guard let the request through: authenticated by a method, anonymous (an `optional` guard), or a CORS preflight. */
function admitted (context: AuthenticateContext, request: FastifyRequest): void {
  const { auth } = request
  if (auth !== null && auth !== undefined) {
    context.outcome = 'authenticated'
    context.method = auth.method
  } else {
    context.outcome = isPreflight(request) ? 'preflight' : 'anonymous'
  }
}

/** The guard answered with an error: its status says how. A 403 names the method that authenticated the user. */
function failed (context: AuthenticateContext, err: unknown, request: FastifyRequest): void {
  const status = (err as { statusCode?: unknown } | null)?.statusCode
  context.outcome = status === 401 || status === 400
    ? 'refused'
    : status === 403 ? 'forbidden' : status === 429 ? 'rate-limited' : 'error'
  const method = request.auth?.method
  if (method !== undefined) context.method = method
  context.error = err
  error.publish(context)
}
