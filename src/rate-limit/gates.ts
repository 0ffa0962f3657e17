import type { FastifyReply, FastifyRequest } from 'fastify'
import { BusyError } from '../core/errors.js'
import type { LimitResult, LocalCounter } from './counters.js'

// The gates in front of the failure budgets in this process: attempts in flight count against
// what is left, the others wait in arrival order (bounded by the plugin's callbackTimeout)
// instead of being refused.

/** `undefined`: the attempt may start (it holds a slot until `leave`). A result: the budget is spent (429). */
export type Admission = LimitResult | undefined
const PENDING = Symbol('pending')

interface Waiter {
  request: FastifyRequest
  reply: FastifyReply
  /** Set when the admission is decided before `enter` returned (no promise needed). */
  settled: Admission | typeof PENDING
  resolve?: (admission: Admission) => void
  reject?: (err: unknown) => void
  timer?: NodeJS.Timeout
}

/** One counter's attempts in this process. Dropped from the map as soon as nobody uses it. */
interface Gate {
  /** Attempts holding a slot (being verified). */
  active: number
  /** Waiting for a slot, first come first served. */
  queue: Waiter[]
}

/** What the guard needs of a failure budget: a slot before the attempt, given back after it. */
export interface FailureGate {
  /** `undefined`: the attempt may start and holds a slot until `leave`. A result: the budget is spent (429). */
  enter (key: string, request: FastifyRequest, reply: FastifyReply): Admission | Promise<Admission>
  /**
   * Ends the attempt; `refused`: it was a failure, and counts against the budget. A promise when
   * the count is written elsewhere (Redis): the refusal is answered once it resolves.
   */
  leave (key: string, refused: boolean): Promise<void> | undefined
  /** Counters with attempts in flight or waiting (0 when idle: nothing is kept per key). */
  readonly size: number
  /** Attempts waiting for a slot, all counters together. */
  readonly waiting: number
}

/** Internal, for tests (not exported by the package): an instance's failure gates. */
export const kFailureGates = Symbol('multiauth.rateLimit.failureGates')
export interface FailureGates { ip: FailureGate | undefined, user: FailureGate | undefined }

/** The per-key gates of a failure budget, each dropped as soon as nobody uses it (both implementations). */
export abstract class KeyedGates<G extends { queue: readonly unknown[] }> {
  protected readonly gates = new Map<string, G>()

  /** Keys with attempts in flight or waiting. */
  get size (): number {
    return this.gates.size
  }

  /** Attempts waiting for a slot. */
  get waiting (): number {
    let waiting = 0
    for (const gate of this.gates.values()) waiting += gate.queue.length
    return waiting
  }
}

/**
 * Failed-attempt budgets in this process. A budget is read before verification (a success must
 * not spend it) and counted after the refusal, so a read cannot see attempts still being
 * verified: without this gate, N concurrent guesses would all pass a budget of M < N. An attempt
 * starts only while (attempts in flight) < (budget remaining). The others queue in arrival order;
 * a slot given back (a success) admits the next, a refusal spends one. So guesses are bounded
 * exactly, concurrent honest requests are delayed, never refused, and a 429 means the counter
 * itself is spent. A wait is bounded by the plugin's `callbackTimeout` (then 503
 * `FST_MULTIAUTH_BUSY`). With a RedisStore, `SharedAttempts` does the same across instances.
 */
export class Attempts extends KeyedGates<Gate> implements FailureGate {
  constructor (
    private readonly counter: LocalCounter,
    /** Longest wait for a slot in ms (the plugin's `callbackTimeout`); 0 waits without bound. */
    private readonly waitMs: number
  ) {
    super()
  }

  /** Synchronous when a slot is free (or the budget is spent). */
  enter (key: string, request: FastifyRequest, reply: FastifyReply): Admission | Promise<Admission> {
    let gate = this.gates.get(key)
    if (gate === undefined) {
      // Nobody else is trying this key: admitted (or refused) at once, without a waiter. This is
      // what #admit decides for a lone attempt; the common case of every honest request.
      const state = this.counter.peek(key)
      if (state.remaining <= 0) return { ...state, remaining: 0 }
      this.gates.set(key, { active: 1, queue: [] })
      return undefined
    }
    const waiter: Waiter = { request, reply, settled: PENDING }
    gate.queue.push(waiter)
    this.#admit(key, gate)
    if (waiter.settled !== PENDING) return waiter.settled
    return new Promise((resolve, reject) => {
      waiter.resolve = resolve
      waiter.reject = reject
    })
  }

  /** Gives the slot back; a refusal is counted first, so the next waiter sees it. */
  leave (key: string, refused: boolean): undefined {
    const gate = this.gates.get(key) as Gate
    gate.active--
    if (refused) this.counter.add(key)
    if (gate.queue.length > 0) this.#admit(key, gate)
    else if (gate.active === 0) this.gates.delete(key)
    return undefined
  }

  #admit (key: string, gate: Gate): void {
    if (gate.queue.length === 0) {
      if (gate.active === 0) this.gates.delete(key)
      return
    }
    const state = this.counter.peek(key)
    if (state.remaining <= 0) {
      // Spent: nothing in flight can give budget back. Everyone waiting gets the 429.
      const spent = { ...state, remaining: 0 }
      for (const waiter of gate.queue.splice(0)) this.#settle(waiter, spent)
    } else {
      for (let room = state.remaining - gate.active; room > 0 && gate.queue.length > 0; room--) {
        gate.active++
        this.#settle(gate.queue.shift() as Waiter, undefined)
      }
      // The rest wait for a slot to be given back (`leave`), each at most `waitMs`.
      if (this.waitMs > 0) {
        for (const waiter of gate.queue) waiter.timer ??= setTimeout(() => this.#expire(key, gate, waiter), this.waitMs)
      }
    }
    if (gate.queue.length === 0 && gate.active === 0) this.gates.delete(key)
  }

  #settle (waiter: Waiter, admission: Admission): void {
    clearTimeout(waiter.timer)
    if (waiter.resolve === undefined) waiter.settled = admission
    else waiter.resolve(admission)
  }

  #expire (key: string, gate: Gate, waiter: Waiter): void {
    const index = gate.queue.indexOf(waiter)
    if (index === -1) return
    gate.queue.splice(index, 1)
    if (gate.queue.length === 0 && gate.active === 0) this.gates.delete(key)
    waiter.request.log.info({ reason: 'no failure-budget slot within timeout' }, 'multiauth: busy')
    ;(waiter.reject as (err: unknown) => void)(busy(waiter.reply, this.waitMs))
  }
}

/** 503 with `Retry-After`: the request waited `callbackTimeout` for its turn; come back after about as long. */
export function busy (reply: FastifyReply, waitedMs: number): Error {
  const seconds = String(Math.max(1, Math.ceil(waitedMs / 1000)))
  reply.header('retry-after', seconds)
  return new BusyError(seconds)
}
