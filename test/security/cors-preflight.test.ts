// [Fetch standard CORS preflight; design: "The guard never lets a route handler run anonymously"]
// Issue 12, finding 1. Before the fix, any OPTIONS request carrying Access-Control-Request-Method
// skipped the guard, so a guarded route whose own handler runs for OPTIONS (`app.all`, a method
// list with OPTIONS, a proxy) answered its data to an anonymous caller; these tests failed then.
// Now a preflight skips the guard only when @fastify/cors's own catch-all OPTIONS route is the
// handler about to run; everywhere else it is authenticated like any request.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import multiauth from '../../src/index.js'

const KEY = 'the-one-valid-key'
const SECRET_DATA = { secret: 'only for authenticated callers' }
const preflightHeaders = { origin: 'https://front.example', 'access-control-request-method': 'GET' }

type Shape = 'all' | 'method-list' | 'global-hook'
interface CorsSetup { name: string, options?: Record<string, unknown>, order?: 'before' | 'after' }

async function appWith (t: Test, shape: Shape, corsSetup: CorsSetup | undefined): Promise<{ app: FastifyInstance, ran: () => number }> {
  const app = Fastify()
  if (corsSetup !== undefined && corsSetup.order !== 'after') await app.register(cors, { origin: 'https://front.example', ...corsSetup.options })
  await app.register(multiauth, { apiKey: { verify: (key) => key === KEY ? { id: 'client' } : null } })
  let runs = 0
  const handler = async (): Promise<unknown> => { runs++; return SECRET_DATA }
  const guard = app.authGuard(['apiKey'])
  if (shape === 'all') app.all('/data', { onRequest: guard }, handler)
  if (shape === 'method-list') app.route({ method: ['GET', 'OPTIONS'], url: '/data', onRequest: guard, handler })
  if (shape === 'global-hook') {
    app.addHook('onRequest', guard)
    app.route({ method: ['GET', 'OPTIONS'], url: '/data', handler })
  }
  if (corsSetup?.order === 'after') await app.register(cors, { origin: 'https://front.example', ...corsSetup.options })
  await app.ready()
  t.teardown(() => app.close())
  return { app, ran: () => runs }
}

const CORS_SETUPS: Array<CorsSetup | undefined> = [
  undefined,
  { name: '@fastify/cors (defaults)' },
  { name: '@fastify/cors registered after the routes', order: 'after' },
  { name: '@fastify/cors with preflightContinue', options: { preflightContinue: true } },
  { name: '@fastify/cors in the preHandler hook', options: { hook: 'preHandler' } }
]

for (const shape of ['all', 'method-list', 'global-hook'] as const) {
  for (const corsSetup of CORS_SETUPS) {
    t.test(`${shape}, ${corsSetup?.name ?? 'no CORS plugin'}: a preflight never runs the handler anonymously`, async (t) => {
      const { app, ran } = await appWith(t, shape, corsSetup)
      const preflight = await app.inject({ method: 'OPTIONS', url: '/data', headers: preflightHeaders })
      t.notMatch(preflight.body, SECRET_DATA.secret, 'no data in the preflight\'s answer')
      t.equal(ran(), 0, 'the route handler did not run for the anonymous preflight')
      if (preflight.statusCode < 300) {
        t.equal(preflight.headers['access-control-allow-origin'], 'https://front.example', 'a 2xx preflight comes from the CORS plugin, with its headers')
      } else {
        t.equal(preflight.statusCode, 401, 'otherwise it is refused like any unauthenticated request')
      }
      // The same route still answers authenticated requests, OPTIONS included.
      const authed = await app.inject({ method: 'OPTIONS', url: '/data', headers: { ...preflightHeaders, 'x-api-key': KEY } })
      if (corsSetup === undefined) {
        t.equal(authed.statusCode, 200, 'an authenticated OPTIONS reaches the handler')
        t.equal(ran(), 1)
      }
      t.equal((await app.inject({ url: '/data' })).statusCode, 401, 'GET without a key: 401')
      t.equal((await app.inject({ url: '/data', headers: { 'x-api-key': KEY } })).statusCode, 200)
    })
  }
}

t.test('with @fastify/cors (defaults) and ordinary guarded routes, preflights still get CORS answers', async (t) => {
  const app = Fastify()
  await app.register(cors, { origin: 'https://front.example' })
  await app.register(multiauth, { apiKey: { verify: (key) => key === KEY ? { id: 'client' } : null } })
  app.get('/data', { onRequest: app.authGuard(['apiKey']) }, async () => SECRET_DATA)
  // A global guard registered before the CORS plugin's routes also lets @fastify/cors's OPTIONS * route answer.
  const global = Fastify()
  await global.register(multiauth, { apiKey: { verify: (key) => key === KEY ? { id: 'client' } : null } })
  global.addHook('onRequest', global.authGuard(['apiKey']))
  await global.register(cors, { origin: 'https://front.example', hook: 'preHandler' })
  global.get('/data', async () => SECRET_DATA)
  t.teardown(async () => { await app.close(); await global.close() })
  for (const instance of [app, global]) {
    const preflight = await instance.inject({ method: 'OPTIONS', url: '/data', headers: preflightHeaders })
    t.equal(preflight.statusCode, 204)
    t.equal(preflight.headers['access-control-allow-origin'], 'https://front.example')
    t.equal((await instance.inject({ method: 'GET', url: '/data' })).statusCode, 401)
  }
})
