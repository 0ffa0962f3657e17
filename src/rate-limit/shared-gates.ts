import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RedisStore } from '../stores/redis.js'
import type { Budget, LimitResult } from './counters.js'
import { busy } from './gates.js'
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
  /** Slots of this process being given back (a `release` in flight): waiters wait for them. */
  releasing: number
}

/**
 * Failure budgets counted in Redis, exact over every instance sharing it. An attempt takes a
 * slot in the shared counter before it starts (`RedisStore.reserve`, one atomic script: the
 * counter holds refusals plus attempts in flight on every instance, and no slot is given past
 * the budget). A success gives its slot back; a refusal keeps it, which is how it is counted.
 * So N instances together run at most `max` failing attempts per window, whatever the
 * concurrency. An attempt that finds no slot waits, in arrival order, while an attempt of this
 * process holds one (it may succeed and give it back), bounded by `callbackTimeout` (then 503
 * `FST_MULTIAUTH_BUSY`); with none held here, the answer is 429: the budget is spent, or held by
 * attempts on other instances, which this one cannot see end. An attempt that dies with its
 * process keeps its slot until the window ends (counted as a failure: the safe direction).
 */
export class SharedAttempts implements FailureGate {
  readonly #gates = new Map<string, Gate>()

  constructor (
    private readonly store: RedisStore,
    /** Key prefix of this budget's counters in the store (`rl:fail:ip:`, `rl:fail:user:`). */
    private readonly namespace: string,
    private readonly budget: Budget,
    /** Longest wait for a slot in ms (the plugin's `callbackTimeout`); 0 waits without bound. */
    private readonly waitMs: number
  ) {}

  get size (): number {
    return this.#gates.size
  }

  get waiting (): number {
    let waiting = 0
    for (const gate of this.#gates.values()) waiting += gate.queue.length
    return waiting
  }

  enter (key: string, request: FastifyRequest, reply: FastifyReply): Promise<Admission> {
    let gate = this.#gates.get(key)
    if (gate === undefined) this.#gates.set(key, gate = { active: 0, queue: [], reserving: false, releasing: 0 })
    const entered = gate
    return new Promise((resolve, reject) => {
      entered.queue.push({ request, reply, resolve, reject })
      this.#pump(key, entered)
    })
  }

  leave (key: string, refused: boolean): void {
    const gate = this.#gates.get(key) as Gate
    gate.active--
    if (refused) {
      // The slot stays taken: it is the refusal's count.
      this.#pump(key, gate)
      return
    }
    // A slot that cannot be given back (Redis down) stays counted until the window ends: fail closed.
    gate.releasing++
    this.store.release(this.namespace + key).catch(() => {}).finally(() => {
      gate.releasing--
      this.#pump(key, gate)
    })
  }

  #pump (key: string, gate: Gate): void {
    if (gate.reserving) return
    const head = gate.queue[0]
    if (head === undefined) {
      if (gate.active === 0 && gate.releasing === 0) this.#drop(key, gate)
      return
    }
    gate.reserving = true
    this.store.reserve(this.namespace + key, this.budget.max, this.budget.timeWindow).then((reservation) => {
      gate.reserving = false
      if (reservation.taken) {
        gate.active++
        gate.queue.shift()
        clearTimeout(head.timer)
        head.resolve(undefined)
      } else if (gate.active === 0 && gate.releasing === 0) {
        // Nothing of ours can give a slot back: the budget is spent (or held elsewhere). Everyone waiting gets the 429.
        const spent: LimitResult = { max: this.budget.max, remaining: 0, ttlInSeconds: Math.ceil(reservation.ttlMs / 1000), isExceeded: true }
        for (const waiter of gate.queue.splice(0)) {
          clearTimeout(waiter.timer)
          waiter.resolve(spent)
        }
      } else {
        // Wait for one of ours to end (`leave` pumps again), each at most `waitMs`.
        if (this.waitMs > 0) {
          for (const waiter of gate.queue) waiter.timer ??= setTimeout(() => this.#expire(key, gate, waiter), this.waitMs)
        }
        return
      }
      this.#pump(key, gate)
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

  /** Forgets an idle gate, unless a newer one already took its place (a release may end after that). */
  #drop (key: string, gate: Gate): void {
    if (this.#gates.get(key) === gate) this.#gates.delete(key)
  }

  #expire (key: string, gate: Gate, waiter: Waiter): void {
    const index = gate.queue.indexOf(waiter)
    if (index === -1) return
    gate.queue.splice(index, 1)
    if (gate.queue.length === 0 && gate.active === 0 && gate.releasing === 0 && !gate.reserving) this.#drop(key, gate)
    waiter.request.log.info({ reason: 'no failure-budget slot within timeout' }, 'multiauth: busy')
    waiter.reject(busy(waiter.reply, this.waitMs))
  }
}
