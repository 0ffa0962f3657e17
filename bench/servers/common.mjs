// Shared by every benchmark server: one Fastify app, one GET / route, listening on
// 127.0.0.1 on a free port. A variant file only says how the route is protected:
//
//   import { serve } from './common.mjs'
//   await serve(async (app) => {
//     await app.register(somePlugin, options)
//     return { onRequest: app.someCheck, headers: { authorization: '...' } }
//   })
//
// `headers` are the valid credentials the harness sends (or an async function returning them,
// called once the server listens, e.g. to log in with inject); `unauthenticatedStatus` is what
// a request without them must get (the harness checks both before measuring).
import Fastify from 'fastify'

export async function serve (setup) {
  const app = Fastify({ logger: false })
  const variant = (await setup(app)) ?? {}
  const routeOptions = {}
  if (variant.onRequest !== undefined) routeOptions.onRequest = variant.onRequest
  app.get('/', routeOptions, async () => ({ hello: 'world' }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  // Bounded: the harness asks for memory figures and stops us; a lost parent ends us too.
  process.on('message', (message) => {
    if (message === 'cpu') {
      // CPU time this process has used (µs, user + system): the harness reads it before and
      // after a measured run, so it gets the server's own cost per request.
      const { user, system } = process.cpuUsage()
      process.send({ cpu: user + system })
    } else if (message === 'memory') {
      globalThis.gc?.()
      const { rss, heapUsed, external } = process.memoryUsage()
      process.send({ memory: { rss, heapUsed, external } })
    }
  })
  process.on('disconnect', () => { app.close().finally(() => process.exit(0)) })
  process.send({
    ready: true,
    port: app.server.address().port,
    headers: (typeof variant.headers === 'function' ? await variant.headers() : variant.headers) ?? {},
    unauthenticatedStatus: variant.unauthenticatedStatus ?? 401
  })
}
