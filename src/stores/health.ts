import { events } from '../core/events.js'

// Whether a store is answering, per store instance: `store:unavailable` at the first failed call,
// then nothing until a call succeeds, then `store:recovered`. A store call that succeeds reads one
// boolean (`down`); the rest runs only on a failure or on the first success after one.

export class StoreHealth {
  /** From a failed call until the next call that succeeds. */
  down = false
  #since = 0

  /** `store`: the name the events carry (the store's class name). */
  constructor (readonly store: string) {}

  failed (cause: 'timeout' | 'error'): void {
    if (this.down) return
    this.down = true
    this.#since = performance.now()
    const channel = events['store:unavailable']
    if (channel.hasSubscribers) channel.publish({ store: this.store, cause })
  }

  /** A call succeeded while `down`. */
  recovered (): void {
    this.down = false
    const channel = events['store:recovered']
    if (channel.hasSubscribers) channel.publish({ store: this.store, unavailableMs: Math.round(performance.now() - this.#since) })
  }
}

const healths = new WeakMap<object, StoreHealth>()

/**
 * The health of an application's own store (a `MultiauthStore`, a `session.store`), one per store
 * object, however many registrations use it. Named by its class; a plain object is `'custom'`.
 */
export function healthOf (store: object): StoreHealth {
  let health = healths.get(store)
  if (health === undefined) healths.set(store, health = new StoreHealth(className(store)))
  return health
}

function className (store: object): string {
  const name: unknown = (store.constructor as { name?: unknown } | undefined)?.name
  return typeof name === 'string' && name !== '' && name !== 'Object' ? name : 'custom'
}
