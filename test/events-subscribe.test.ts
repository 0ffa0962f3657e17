// subscribeMultiauth: one event, its payload typed, and the function that unsubscribes.
import t from 'tap'
import Fastify from 'fastify'
import multiauth, { MULTIAUTH_CHANNELS, subscribeMultiauth } from '../src/index.js'
import type { MultiauthEventName, RefusedEvent } from '../src/index.js'

async function app (): Promise<ReturnType<typeof Fastify>> {
  const app = Fastify()
  await app.register(multiauth, { apiKey: { verify: (key: string) => (key === 'good-key' ? { id: 'robot' } : null) } })
  app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async (request) => ({ id: request.auth?.method }))
  return app
}

t.test('the listener gets each payload of its event, typed, until it unsubscribes', async (t) => {
  const server = await app()
  t.teardown(async () => { await server.close() })
  const refused: RefusedEvent[] = []
  const authenticated: Array<string | undefined> = []
  const stopRefused = subscribeMultiauth('refused', (event) => { refused.push(event) })
  // The payload is typed: `userId` of an `authenticated` event, no cast.
  const stopAuthenticated = subscribeMultiauth('authenticated', (event) => { authenticated.push(event.userId) })
  t.teardown(() => { stopRefused(); stopAuthenticated() })

  t.equal((await server.inject({ url: '/me', headers: { 'x-api-key': 'bad-key' } })).statusCode, 401)
  t.equal((await server.inject({ url: '/me', headers: { 'x-api-key': 'good-key' } })).statusCode, 200)
  t.equal((await server.inject({ url: '/me' })).statusCode, 401)
  t.same(refused.map(({ method, reason, route }) => ({ method, reason, route })), [
    { method: 'apiKey', reason: 'refused-by-callback', route: '/me' },
    { method: undefined, reason: 'missing', route: '/me' }
  ])
  t.same(authenticated, ['robot'])

  stopRefused()
  t.equal((await server.inject({ url: '/me' })).statusCode, 401)
  t.equal(refused.length, 2, 'nothing after unsubscribing')
  stopRefused()
  t.pass('unsubscribing twice is harmless')
})

t.test('the same channel as MULTIAUTH_CHANNELS names: a publisher there reaches the listener', async (t) => {
  const { channel } = await import('node:diagnostics_channel')
  const seen: unknown[] = []
  const stop = subscribeMultiauth('token:revoked-all', (event) => { seen.push(event.userId) })
  t.teardown(stop)
  channel(MULTIAUTH_CHANNELS['token:revoked-all']).publish({ userId: 'alice' })
  t.same(seen, ['alice'])
})

t.test('an unknown event name or a listener that is not a function is a TypeError at once', async (t) => {
  for (const name of ['nope', 'toString', '__proto__', 'constructor']) {
    t.throws(() => subscribeMultiauth(name as MultiauthEventName, () => {}), { name: 'TypeError', message: /unknown event/ }, name)
  }
  t.throws(() => subscribeMultiauth('refused', 'listener' as unknown as () => void), { name: 'TypeError', message: /must be a function/ })
})
