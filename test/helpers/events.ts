import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { Test } from 'tap'
import { MULTIAUTH_CHANNELS } from '../../src/index.js'
import type { MultiauthEventName, MultiauthEvents } from '../../src/index.js'

/** One published event: its name (after `fastify-multiauth:`) and its payload, as a subscriber got it. */
export type RecordedEvent = { [K in MultiauthEventName]: { name: K, payload: MultiauthEvents[K] } }[MultiauthEventName]

export interface EventRecorder {
  /** Everything published since `recordEvents`, in order. */
  readonly all: RecordedEvent[]
  /** The events published since the last `take()` (or since recording began), removed from the next `take()`. */
  take: () => RecordedEvent[]
  /** Resolves with the next payload published on `name` (for events that come after the response). */
  next: <K extends MultiauthEventName>(name: K) => Promise<MultiauthEvents[K]>
}

/**
 * Subscribes to every channel of MULTIAUTH_CHANNELS, as an application would (`subscribe` from
 * node:diagnostics_channel), until the test ends.
 */
export function recordEvents (t: Test): EventRecorder {
  const all: RecordedEvent[] = []
  let taken = 0
  const waiting: Array<{ name: MultiauthEventName, resolve: (payload: never) => void }> = []
  for (const [name, channel] of Object.entries(MULTIAUTH_CHANNELS)) {
    const listener = (payload: unknown): void => {
      all.push({ name, payload } as RecordedEvent)
      const at = waiting.findIndex((w) => w.name === name)
      if (at !== -1) waiting.splice(at, 1)[0]?.resolve(payload as never)
    }
    subscribe(channel, listener)
    t.teardown(() => { unsubscribe(channel, listener) })
  }
  return {
    all,
    take () {
      const events = all.slice(taken)
      taken = all.length
      return events
    },
    async next (name) {
      return await new Promise((resolve) => { waiting.push({ name, resolve }) })
    }
  }
}

/**
 * Fails for every payload that contains one of `secrets` (a credential, a header value, a marker)
 * anywhere in its JSON, nested fields included.
 */
export function assertNoSecrets (t: Test, events: readonly RecordedEvent[], secrets: Iterable<string>): void {
  const list = [...secrets].filter((secret) => secret.length > 0)
  let leaks = 0
  for (const event of events) {
    const json = JSON.stringify(event.payload)
    for (const secret of list) {
      if (json.includes(secret)) {
        leaks++
        t.fail(`the ${event.name} payload contains a credential: ${json}`)
      }
    }
  }
  t.equal(leaks, 0, `${events.length} payloads checked against ${list.length} credential strings: none found`)
}
