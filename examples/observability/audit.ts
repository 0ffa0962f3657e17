// The audit log: one JSON line per security event, through a child of the application's pino
// logger. The child has its own level (info) so audit lines are written even when the request
// logs are set to warn, and every line carries `"audit":true` and `"event"`, so a log shipper
// (or `grep '"audit":true'`) separates them from request logs in the same stream.
//
// The payloads are written as published: the plugin guarantees they hold ids, names and fixed
// codes, never a credential, token, password, cookie or raw header (docs/events.md). They do
// hold user ids and client IPs: keep the audit log where personal data may be kept.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { FastifyBaseLogger } from 'fastify'
import { MULTIAUTH_CHANNELS } from '../../src/index.js'

/** Subscribes to every channel; returns the function that unsubscribes. */
export function auditLog (logger: FastifyBaseLogger): () => void {
  const audit = logger.child({ audit: true }, { level: 'info' })
  const listeners = Object.entries(MULTIAUTH_CHANNELS).map(([event, name]) => {
    const listener = (payload: unknown): void => { audit.info({ event, payload }) }
    subscribe(name, listener)
    return { name, listener }
  })
  return () => { for (const { name, listener } of listeners) unsubscribe(name, listener) }
}
