// Prometheus metrics from fastify-multiauth's diagnostics channels (docs/events.md), with
// prom-client and a registry of their own, so that GET /metrics shows only these.
//
// Every label value comes from a fixed set (a method name, a refusal reason, a budget): a label
// never carries a user id, a route or an IP, which would make one time series per user.
import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel'
import { Counter, Histogram, Registry } from 'prom-client'
import { AUTHENTICATE_TRACING_CHANNEL, MULTIAUTH_CHANNELS, REFUSAL_REASONS } from '../../src/index.js'
import type { AuthenticateContext, MethodName, RateLimitedEvent } from '../../src/index.js'

const METHODS: readonly MethodName[] = ['basic', 'token', 'apiKey', 'session', 'oauth2']
const BUDGETS: ReadonlyArray<RateLimitedEvent['budget']> = ['failures-per-ip', 'failures-per-user', 'per-credential']
const OUTCOMES: ReadonlyArray<NonNullable<AuthenticateContext['outcome']>> =
  ['authenticated', 'anonymous', 'preflight', 'refused', 'forbidden', 'rate-limited', 'error']

/**
 * `payload[field]` when it is one of `allowed`, else `fallback`. A subscriber receives `unknown`
 * (diagnostics_channel is untyped); checking against the known values both types the label and
 * keeps a label's values a fixed set whatever a publisher sends.
 */
function labelOf<T extends string> (payload: unknown, field: string, allowed: readonly T[], fallback: string): string {
  const value: unknown = typeof payload === 'object' && payload !== null ? Reflect.get(payload, field) : undefined
  return allowed.find((known) => known === value) ?? fallback
}

// Per-run state lives on the tracing context object (one per guard run), not in a map keyed by
// request: nothing to clean up, nothing to leak when a run never ends.
const startedAt = Symbol('startedAt')
const recorded = Symbol('recorded')
interface TimedRun extends AuthenticateContext {
  [startedAt]?: bigint
  [recorded]?: true
}

export interface AuthMetrics {
  registry: Registry
  /** Unsubscribes from every channel (on the application's close). */
  stop: () => void
}

export function authMetrics (): AuthMetrics {
  const registry = new Registry()
  const authentications = new Counter({
    name: 'multiauth_authentications_total',
    help: 'Guard runs by how they ended (outcome) and the method that admitted the request (none when no method did).',
    labelNames: ['method', 'outcome'] as const,
    registers: [registry]
  })
  const duration = new Histogram({
    name: 'multiauth_authentication_duration_seconds',
    help: 'Time from the start of a guard run to its answer.',
    labelNames: ['method', 'outcome'] as const,
    // Sub-millisecond for a token or an API key; tens of milliseconds for an argon2id password check.
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry]
  })
  const refusals = new Counter({
    name: 'multiauth_refusals_total',
    help: 'Refused credentials by method (none: no credentials were presented) and reason.',
    labelNames: ['method', 'reason'] as const,
    registers: [registry]
  })
  const rateLimited = new Counter({
    name: 'multiauth_rate_limited_total',
    help: 'Requests answered 429 by the budget that was spent.',
    labelNames: ['budget'] as const,
    registers: [registry]
  })
  const refreshReuse = new Counter({
    name: 'multiauth_refresh_reuse_total',
    help: 'Spent refresh tokens presented again (a stolen token, or a client bug): the family was revoked.',
    registers: [registry]
  })

  /** Records a finished run once: a run that answered synchronously ends at `end`, any other at `asyncEnd`. */
  const finish = (run: TimedRun): void => {
    const start = run[startedAt]
    if (start === undefined || run.outcome === undefined || run[recorded] === true) return
    run[recorded] = true
    const labels = { method: labelOf(run, 'method', METHODS, 'none'), outcome: labelOf(run, 'outcome', OUTCOMES, 'error') }
    authentications.inc(labels)
    duration.observe(labels, Number(process.hrtime.bigint() - start) / 1e9)
  }
  const tracing = tracingChannel<unknown, TimedRun>(AUTHENTICATE_TRACING_CHANNEL)
  const runs = {
    start: (run: TimedRun) => { run[startedAt] = process.hrtime.bigint() },
    end: finish,
    asyncStart: () => {},
    asyncEnd: finish,
    error: () => {} // the run still ends (end or asyncEnd) with outcome 'error' or the refusal's outcome
  }

  const onRefused = (payload: unknown): void => {
    refusals.inc({ method: labelOf(payload, 'method', METHODS, 'none'), reason: labelOf(payload, 'reason', REFUSAL_REASONS, 'other') })
  }
  const onRateLimited = (payload: unknown): void => { rateLimited.inc({ budget: labelOf(payload, 'budget', BUDGETS, 'other') }) }
  const onRefreshReused = (): void => { refreshReuse.inc() }

  tracing.subscribe(runs)
  subscribe(MULTIAUTH_CHANNELS.refused, onRefused)
  subscribe(MULTIAUTH_CHANNELS['rate-limited'], onRateLimited)
  subscribe(MULTIAUTH_CHANNELS['token:refresh-reused'], onRefreshReused)
  return {
    registry,
    stop: () => {
      tracing.unsubscribe(runs)
      unsubscribe(MULTIAUTH_CHANNELS.refused, onRefused)
      unsubscribe(MULTIAUTH_CHANNELS['rate-limited'], onRateLimited)
      unsubscribe(MULTIAUTH_CHANNELS['token:refresh-reused'], onRefreshReused)
    }
  }
}
