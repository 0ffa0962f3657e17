import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RedisStore } from '../stores/redis.js'
import type { Budget, LimitResult } from './counters.js'
import { busy, KeyedGates } from './gates.js'
import type { Admission, FailureGate } from './gates.js'

// The failure budgets on a shared store: exact across instances.

interface Waiter {
  request: FastifyRequest
  reply: FastifyReply
  resolve: (admission: Admission) => void
  reject: (err: unknown) => void
  timer?: NodeJS.Timeout
}

/** One counter's attempts in this process. Dropped from the map as soon as nobody uses it. */
interface Gate {
  /** Attempts of this process holding a slot in the shared counter. */
  active: number
  /** Waiting for a slot, first come first served. */
  queue: Waiter[]
  /** A `reserve` for the head of the queue is in flight. */
  reserving: boolean
  /** Slots of this process being given back (a success's `settle` in flight). */
  releasing: number
  /** Consecutive tries that found every slot held by attempts in flight (for the backoff). */
  held: number
  /** The next try, while slots are held by attempts in flight elsewhere. */
  retry?: NodeJS.Timeout
}

// While every slot is held by attempts in flight (on any instance), the head of the queue looks
// again after 10 ms, doubling up to 200 ms: a slot is given back within one verification.
const RETRY_FIRST_MS = 10
const RETRY_MAX_MS = 200

/**
 * Failure budgets counted in Redis, exact over every instance sharing it. An attempt takes a slot
 * in the shared counter before it starts (`RedisStore.reserve`, one atomic script over refusals
 * plus attempts in flight on every instance), so N instances together run at most `max` failing
 * attempts per window, whatever the concurrency. A success gives its slot back; a refusal turns
 * it into a counted refusal, and the 401 waits until that is written (with `waitForReplicas`,
 * acknowledged by replicas). An attempt that finds every slot held by attempts in flight waits,
 * in arrival order, for one to be given back, bounded by `callbackTimeout` (then 503
 * `FST_MULTIAUTH_BUSY`); a 429 means the refusals alone have spent the budget. An attempt that
 * dies with its process holds its slot until the window ends (a refusal, in effect: the safe
 * direction).
 */
export class SharedAttempts extends KeyedGates<Gate> implements FailureGate {
  constructor (
    private readonly store: RedisStore,
    /** Key prefix of this budget's counters in the store (`rl:fail:ip:`, `rl:fail:user:`). */
    private readonly namespace: string,
    private readonly budget: Budget,
    /** Longest wait for a slot in ms (the plugin's `callbackTimeout`); 0 waits without bound. */
    private readonly waitMs: number
  ) {
    super()
  }

  /** Counters whose first waiter found every slot held by attempts in flight, and looks again shortly. */
  get held (): number {
    let held = 0
    for (const gate of this.gates.values()) if (gate.retry !== undefined) held++
    return held
  }

  enter (key: string, request: FastifyRequest, reply: FastifyReply): Promise<Admission> {
    let gate = this.gates.get(key)
    if (gate === undefined) this.gates.set(key, gate = { active: 0, queue: [], reserving: false, releasing: 0, held: 0 })
    const entered = gate
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { request, reply, resolve, reject }
      // Behind others: bounded from now. First in line: its `reserve` is bounded by the store's
      // commandTimeout, and a timer starts only if it has to wait after that.
      if (entered.queue.length > 0 || entered.reserving) this.#bound(key, entered, waiter)
      entered.queue.push(waiter)
      this.#pump(key, entered)
    })
  }

  /** A refusal resolves once it is counted (the guard answers 401 after that); a success is given back in the background. */
  leave (key: string, refused: boolean): Promise<void> | undefined {
    const gate = this.gates.get(key) as Gate
    gate.active--
    const settled = this.store.settle(this.namespace + key, refused, this.budget.timeWindow)
    if (refused) return settled.finally(() => this.#pump(key, gate))
    gate.releasing++
    // A slot that cannot be given back (Redis down) stays held until the window ends: fail closed.
    settled.catch(() => {}).finally(() => {
      gate.releasing--
      this.#pump(key, gate)
    })
    return undefined
  }

  #pump (key: string, gate: Gate): void {
    if (gate.reserving) return
    clearTimeout(gate.retry)
    gate.retry = undefined
    const head = gate.queue[0]
    if (head === undefined) {
      if (gate.active === 0 && gate.releasing === 0) this.#drop(key, gate)
      return
    }
    gate.reserving = true
    this.store.reserve(this.namespace + key, this.budget.max, this.budget.timeWindow).then((reservation) => {
      gate.reserving = false
      if (reservation.taken) {
        gate.held = 0
        gate.active++
        gate.queue.shift()
        clearTimeout(head.timer)
        head.resolve(undefined)
        this.#pump(key, gate)
      } else if (reservation.refusals >= this.budget.max) {
        // Spent by refusals: nothing in flight can give it back. Everyone waiting gets the 429.
        const spent: LimitResult = { max: this.budget.max, remaining: 0, ttlInSeconds: Math.ceil(reservation.ttlMs / 1000), isExceeded: true }
        for (const waiter of gate.queue.splice(0)) {
          clearTimeout(waiter.timer)
          waiter.resolve(spent)
        }
        if (gate.active === 0 && gate.releasing === 0) this.#drop(key, gate)
      } else {
        // Every slot is held by an attempt in flight. One of ours pumps again when it ends; one
        // elsewhere cannot tell us, so look again shortly. Each waiter is bounded by `waitMs`.
        for (const waiter of gate.queue) this.#bound(key, gate, waiter)
        const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** gate.held)
        gate.held = Math.min(gate.held + 1, 10)
        gate.retry = setTimeout(() => this.#pump(key, gate), delay)
      }
    }, (err: unknown) => {
      // The counter cannot be reached (store down): every waiter fails the same way (503).
      gate.reserving = false
      for (const waiter of gate.queue.splice(0)) {
        clearTimeout(waiter.timer)
        waiter.reject(err)
      }
      if (gate.active === 0 && gate.releasing === 0) this.#drop(key, gate)
    })
  }

  /** Starts a waiter's bound (`waitMs`), once. */
  #bound (key: string, gate: Gate, waiter: Waiter): void {
    if (this.waitMs > 0) waiter.timer ??= setTimeout(() => this.#expire(key, gate, waiter), this.waitMs)
  }

  #expire (key: string, gate: Gate, waiter: Waiter): void {
    const index = gate.queue.indexOf(waiter)
    if (index === -1) return
    gate.queue.splice(index, 1)
    if (gate.queue.length === 0) {
      clearTimeout(gate.retry)
      gate.retry = undefined
      if (gate.active === 0 && gate.releasing === 0 && !gate.reserving) this.#drop(key, gate)
    }
    waiter.request.log.info({ reason: 'no failure-budget slot within timeout' }, 'multiauth: busy')
    waiter.reject(busy(waiter.reply, this.waitMs))
  }

  /** Forgets an idle gate, unless a newer one already took its place. */
  #drop (key: string, gate: Gate): void {
    if (this.gates.get(key) === gate) this.gates.delete(key)
  }
}
