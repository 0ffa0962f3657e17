import type { Cluster, Redis } from 'ioredis'

/** What the store hands to ioredis: one command, or a pipeline's `exec`. */
export type Command<T> = () => PromiseLike<T>

/** The client was not connected within the time the store gives a command; the command was never sent. */
export class RedisNotReadyError extends Error {
  constructor (status: string, ms: number) {
    super(`the Redis client was not ready within ${ms} ms (status "${status}"); the command was not sent`)
    this.name = 'RedisNotReadyError'
  }
}

/**
 * Sends a store's commands only while its client is connected.
 *
 * Why: an ioredis client that is (re)connecting keeps the commands it is given in an offline
 * queue and sends them once it is connected again — a Cluster client for as long as the outage
 * lasts, however long. The store answers 503 after `commandTimeout`, so such a command would run
 * long after its request was told it failed: a refresh rotation that the client then retries
 * (and is seen as a reuse), a failure-budget slot held until its window ends, and a queue that
 * grows with every request of the outage. Here a command waits for the client's `ready` for at
 * most the time the store gives it, and is dropped — never sent — when that runs out.
 *
 * While the client is ready (the steady state) a command is sent at once: one property read,
 * no promise, no timer.
 */
export class ReadyGate {
  readonly #client: Redis | Cluster
  readonly #waiting = new Set<() => void>()
  readonly #wakeAll = (): void => {
    for (const wake of this.#waiting) wake()
    this.#waiting.clear()
  }

  constructor (client: Redis | Cluster) {
    this.#client = client
    // One listener for every waiting command (a listener per command would pass Node's
    // MaxListeners warning at the eleventh request of an outage).
    client.on('ready', this.#wakeAll)
  }

  /**
   * `command()` now when the client is ready; else once it is, if that happens within `ms`.
   * The wait's timer is set before the caller's own bound of the same length (`boundedStore`
   * is called with this promise as its argument), so it fires first: a command is never sent
   * after its caller gave up on it.
   */
  send<T>(ms: number, command: Command<T>): PromiseLike<T> {
    const { status } = this.#client
    // 'end': closed for good; ioredis refuses the command at once ("Connection is closed").
    if (status === 'ready' || status === 'end') return command()
    if (status === 'wait') this.#client.connect().catch(() => {}) // lazyConnect: the first command connects
    return new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiting.delete(wake)
        reject(new RedisNotReadyError(this.#client.status, ms))
      }, ms)
      this.#waiting.add(wake)
    }).then(command)
  }

  close (): void {
    this.#client.off('ready', this.#wakeAll)
  }
}
