// A small, bounded load driver for fault tests. Instead of a fixed-duration run judged by
// wall-clock windows, every request records the *phase* the test was in when it was sent
// and when it was answered; the test advances the phase itself, right after real events
// (a revoke call resolved, redis-server killed and its port closed, restart complete, a
// probe answered). Assertions then speak about phases ("sent after the kill completed and
// answered before the restart began"), which no scheduling delay on a loaded machine can blur.
import http from 'node:http'

export interface LoadTarget {
  path: string
  headers?: Record<string, string>
}

export interface Hit {
  target: string
  /** Phase index when the request was created (it cannot have been sent earlier). */
  sent: number
  /** Phase index when the response ended (or the request failed). */
  answered: number
  /** HTTP status; 0 when the request failed (`error` says why). */
  status: number
  error?: string
}

export interface PhasedLoadOptions<P extends string> {
  /** Phase names in order; the load starts in the first. */
  phases: readonly P[]
  workersPerTarget?: number
  /** One request not answered in this many ms is recorded as an error (never a hang). */
  requestTimeoutMs?: number
}

export class PhasedLoad<P extends string> {
  readonly hits: Hit[] = []
  #phase = 0
  #stopped = false
  #workers: Array<Promise<void>> = []
  #waiters = new Set<() => void>()
  readonly #agent: http.Agent
  readonly #host: string
  readonly #port: number
  readonly #phases: readonly P[]
  readonly #targets: Record<string, LoadTarget>
  readonly #perTarget: number
  readonly #requestTimeoutMs: number

  constructor (base: string, targets: Record<string, LoadTarget>, options: PhasedLoadOptions<P>) {
    const url = new URL(base)
    this.#host = url.hostname
    this.#port = Number(url.port)
    this.#targets = targets
    this.#phases = options.phases
    this.#perTarget = options.workersPerTarget ?? 2
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 10_000
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })
  }

  /** Index of `phase`, for comparisons (`hit.sent >= load.at('down')`). */
  at (phase: P): number {
    const i = this.#phases.indexOf(phase)
    if (i === -1) throw new Error(`unknown phase ${phase}`)
    return i
  }

  get phase (): P { return this.#phases[this.#phase] as P }

  /** Moves to `phase`, which must be the next one: requests created from now on are "sent" in it. */
  enter (phase: P): void {
    const i = this.at(phase)
    if (i !== this.#phase + 1) throw new Error(`phase ${phase} entered from ${this.phase}`)
    this.#phase = i
  }

  start (): void {
    for (const name of Object.keys(this.#targets)) {
      for (let w = 0; w < this.#perTarget; w++) this.#workers.push(this.#work(name))
    }
  }

  async #work (name: string): Promise<void> {
    while (!this.#stopped) {
      const hit = await this.request(name)
      this.hits.push(hit)
      for (const wake of this.#waiters) wake()
      // A failed request fails the test; this worker stops rather than spin on a refused port.
      if (hit.status === 0) return
    }
  }

  /** One request to target `name`, outside the workers' counts (a probe). Never rejects. */
  async request (name: string): Promise<Hit> {
    const target = this.#targets[name]
    if (target === undefined) throw new Error(`unknown target ${name}`)
    const sent = this.#phase
    return await new Promise<Hit>((resolve) => {
      const done = (status: number, error?: string): void => resolve({ target: name, sent, answered: this.#phase, status, error })
      const req = http.request({ host: this.#host, port: this.#port, path: target.path, headers: target.headers, agent: this.#agent }, (res) => {
        res.resume()
        res.on('end', () => done(res.statusCode ?? 0))
        res.on('error', (err) => done(0, err.message))
      })
      req.setTimeout(this.#requestTimeoutMs, () => req.destroy(new Error(`no answer in ${this.#requestTimeoutMs} ms`)))
      req.on('error', (err) => done(0, err.message))
      req.end()
    })
  }

  /** Hits matching every given condition. */
  select (where: { target?: string, sentIn?: P, answeredIn?: P, sentFrom?: P }): Hit[] {
    return this.hits.filter((h) =>
      (where.target === undefined || h.target === where.target) &&
      (where.sentIn === undefined || h.sent === this.at(where.sentIn)) &&
      (where.answeredIn === undefined || h.answered === this.at(where.answeredIn)) &&
      (where.sentFrom === undefined || h.sent >= this.at(where.sentFrom)))
  }

  /** Resolves once `done()` holds (checked after every answered request); rejects with `what` after `deadlineMs`. */
  async until (what: string, done: () => boolean, deadlineMs: number): Promise<void> {
    if (done()) return
    await new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        if (!done()) return
        cleanup()
        resolve()
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`waited ${deadlineMs} ms for ${what}; in phase ${this.phase} with ${this.hits.length} answers (${this.summary()})`))
      }, deadlineMs)
      const cleanup = (): void => { clearTimeout(timer); this.#waiters.delete(wake) }
      this.#waiters.add(wake)
    })
  }

  /** Stops the workers and waits for their last requests (each bounded by the request timeout). */
  async stop (): Promise<void> {
    this.#stopped = true
    for (const wake of this.#waiters) wake()
    await Promise.all(this.#workers)
    this.#agent.destroy()
  }

  /** "target: phase sent→answered status×count, …", for comments and failure messages. */
  summary (): string {
    const counts = new Map<string, number>()
    for (const h of this.hits) {
      const key = `${h.target}: ${this.#phases[h.sent] as string}→${this.#phases[h.answered] as string} ${h.status === 0 ? `error ${h.error ?? ''}` : h.status}`
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    return [...counts].map(([k, n]) => `${k} ×${n}`).join('; ')
  }
}

/** Repeats `attempt` until it returns true, pausing `intervalMs` between tries; rejects with `what` after `deadlineMs`. */
export async function retryUntil (what: string, attempt: () => Promise<boolean>, deadlineMs: number, intervalMs = 50): Promise<number> {
  const end = Date.now() + deadlineMs
  for (let tries = 1; ; tries++) {
    if (await attempt()) return tries
    if (Date.now() >= end) throw new Error(`gave up after ${deadlineMs} ms (${tries} tries) waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
