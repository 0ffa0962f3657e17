import type { FastifyRequest } from 'fastify'

/**
 * A CORS preflight carries no credentials by design (Fetch standard), so a guard must let a CORS
 * plugin answer it — but never let an application handler run anonymously. The guard therefore
 * skips a preflight only when the handler about to run is @fastify/cors's catch-all `OPTIONS *`
 * route (its hook answered, or will answer, with CORS headers and no data). A route that handles
 * OPTIONS itself (`app.all`, a method list with OPTIONS) is guarded for preflights like any request.
 * Usually @fastify/cors answers in its own `onRequest` hook before any route's guard runs.
 */
export function isPreflight (request: FastifyRequest): boolean {
  if (request.method !== 'OPTIONS' || request.headers['access-control-request-method'] === undefined) return false
  const route = request.routeOptions
  return route.url === '*' && route.method === 'OPTIONS' && request.server.hasPlugin('@fastify/cors')
}
