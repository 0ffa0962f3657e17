// Each guard run is a run of the `tracing:fastify-multiauth:authenticate` channels (start, end,
// asyncStart, asyncEnd, error), as Node's tracingChannel.traceSync/tracePromise publish them. The
// subscriber below does what an OpenTelemetry instrumentation does: a span opened at `start`,
// closed at `end` when the run ended synchronously (`outcome` set) or else at `asyncEnd`, with
// the method and the outcome as attributes, and the span as the active context (an
// AsyncLocalStorage bound to `start`) while the guard runs the application's callbacks.
import t from 'tap'
import type { Test } from 'tap'
import { AsyncLocalStorage } from 'node:async_hooks'
import { tracingChannel } from 'node:diagnostics_channel'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import multiauth, { AUTHENTICATE_TRACING_CHANNEL } from '../src/index.js'
import type { AuthenticateContext, MultiauthOptions } from '../src/index.js'
import { basicHeader, traced } from './helpers/app.js'

interface Span {
  requestId: string
  route: string | undefined
  methods: readonly string[]
  /** The channels this run published on, in order. */
  trail: string[]
  attributes: { outcome?: string, method?: string, errorCode?: string }
  closed: boolean
}

const kSpan = Symbol('span')
type Traced = AuthenticateContext & { [kSpan]?: Span }

/** A minimal instrumentation: one span per guard run. */
function instrument (t: Test): { spans: Span[], active: AsyncLocalStorage<Span> } {
  const spans: Span[] = []
  const active = new AsyncLocalStorage<Span>()
  const channel = tracingChannel<unknown, Traced>(AUTHENTICATE_TRACING_CHANNEL)
  /** Opened by whichever comes first: the bound store's transform (it runs before the `start` subscribers) or `start`. */
  const open = (context: Traced): Span => {
    let span = context[kSpan]
    if (span === undefined) {
      span = { requestId: context.requestId, route: context.route, methods: context.methods, trail: [], attributes: {}, closed: false }
      context[kSpan] = span
      spans.push(span)
    }
    return span
  }
  // The span becomes the active context while the guard runs, as OpenTelemetry's context manager does.
  channel.start.bindStore(active, (context) => open(context as Traced))
  const close = (context: Traced): void => {
    const span = context[kSpan] as Span
    span.attributes = { outcome: context.outcome, method: context.method, errorCode: (context.error as { code?: string } | undefined)?.code }
    span.closed = true
  }
  const handlers = {
    start (message: unknown) { open(message as Traced).trail.push('start') },
    end (message: unknown) {
      const context = message as Traced
      context[kSpan]?.trail.push('end')
      // A synchronous answer: the outcome is known now. Otherwise asyncEnd follows.
      if (context.outcome !== undefined) close(context)
    },
    asyncStart (message: unknown) { (message as Traced)[kSpan]?.trail.push('asyncStart') },
    asyncEnd (message: unknown) {
      const context = message as Traced
      context[kSpan]?.trail.push('asyncEnd')
      close(context)
    },
    error (message: unknown) { (message as Traced)[kSpan]?.trail.push('error') }
  }
  channel.subscribe(handlers)
  t.teardown(() => {
    channel.unsubscribe(handlers)
    channel.start.unbindStore(active)
  })
  return { spans, active }
}

const KEYS = new Map([['key-sync', 'ann'], ['key-async', 'ann'], ['key-bob', 'bob'], ['key-crash', 'crash']])
const ROLES = new Map([['ann', ['admin']], ['bob', []]])

/** What the callbacks saw as the active span (the instrumentation's context inside the guard run). */
const seenSpans: Array<Span | undefined> = []

async function appWith (t: Test, active: AsyncLocalStorage<Span>, extra: Partial<MultiauthOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(multiauth, {
    apiKey: {
      verify: (key) => {
        seenSpans.push(active.getStore())
        const id = KEYS.get(key)
        if (id === 'crash') return Promise.reject(new Error('database down'))
        const user = id === undefined ? null : { id }
        return key === 'key-async' ? Promise.resolve(user) : user
      }
    },
    roles: (user) => ROLES.get((user as { id: string }).id) ?? [],
    ...extra
  })
  const ok = async (): Promise<string> => 'ok'
  app.get('/data', { onRequest: traced(app.authGuard(['apiKey'])) }, ok)
  app.get('/admin/:section', { onRequest: app.authGuard({ methods: ['apiKey'], roles: ['admin'] }) }, ok)
  app.get('/optional', { onRequest: app.authGuard({ methods: ['apiKey'], optional: true }) }, ok)
  app.get('/verifier', { onRequest: app.verifyApiKey }, ok)
  await app.ready()
  t.teardown(() => app.close())
  return app
}

t.test('one span per guard run: the outcome and the method, for every way a run ends', async (t) => {
  const { spans, active } = instrument(t)
  const app = await appWith(t, active)
  const run = async (url: string, headers: Record<string, string>, status: number, sync?: 'yes' | 'no'): Promise<Span> => {
    const before = spans.length
    const res = await app.inject({ url, headers })
    t.equal(res.statusCode, status, `${url} ${JSON.stringify(headers)} → ${status}`)
    if (sync !== undefined) t.equal(res.headers['x-guard-sync'], sync, sync === 'yes' ? 'done() still called synchronously while traced' : 'answered asynchronously')
    t.equal(spans.length, before + 1, 'one span')
    const span = spans[before] as Span
    t.ok(span.closed, 'the span was closed')
    t.match(span.requestId, /^req-/)
    return span
  }

  let span = await run('/data', { 'x-api-key': 'key-sync' }, 200, 'yes')
  t.strictSame(span, { requestId: span.requestId, route: '/data', methods: ['apiKey'], trail: ['start', 'end'], attributes: { outcome: 'authenticated', method: 'apiKey', errorCode: undefined }, closed: true }, 'a synchronous admission: start, end')

  span = await run('/data', { 'x-api-key': 'key-async' }, 200, 'no')
  t.strictSame(span.trail, ['start', 'end', 'asyncStart', 'asyncEnd'], 'an asynchronous admission: start, end, then asyncStart and asyncEnd')
  t.strictSame(span.attributes, { outcome: 'authenticated', method: 'apiKey', errorCode: undefined })

  span = await run('/data', { 'x-api-key': 'key-nobody' }, 401, 'yes')
  t.strictSame(span.trail, ['start', 'error', 'end'], 'a synchronous refusal: error, then end')
  t.strictSame(span.attributes, { outcome: 'refused', method: undefined, errorCode: 'FST_MULTIAUTH_CREDENTIALS_INVALID' })

  span = await run('/data', {}, 401)
  t.strictSame(span.attributes, { outcome: 'refused', method: undefined, errorCode: 'FST_MULTIAUTH_CREDENTIALS_MISSING' })

  span = await run('/admin/users', { 'x-api-key': 'key-bob' }, 403)
  t.equal(span.route, '/admin/:section', 'the route pattern')
  t.strictSame(span.attributes, { outcome: 'forbidden', method: 'apiKey', errorCode: 'FST_MULTIAUTH_FORBIDDEN' }, 'a 403: the method that authenticated the user')

  span = await run('/data', { 'x-api-key': 'key-crash' }, 500, 'no')
  t.strictSame(span.trail, ['start', 'end', 'error', 'asyncStart', 'asyncEnd'], 'an asynchronous failure: end, then error, asyncStart, asyncEnd')
  t.strictSame(span.attributes, { outcome: 'error', method: undefined, errorCode: 'FST_MULTIAUTH_CALLBACK_ERROR' }, 'a callback error')

  span = await run('/optional', {}, 200)
  t.strictSame(span.attributes, { outcome: 'anonymous', method: undefined, errorCode: undefined }, 'an optional guard, no credentials')

  span = await run('/verifier', { 'x-api-key': 'key-sync' }, 200)
  t.strictSame([span.route, span.attributes.outcome, span.attributes.method], ['/verifier', 'authenticated', 'apiKey'], 'verifyApiKey is traced as a guard is')
})

t.test('a CORS preflight the guard lets through', async (t) => {
  const { spans } = instrument(t)
  const app = Fastify()
  await app.register(cors, { origin: 'https://front.example', hook: 'preHandler' })
  await app.register(multiauth, { apiKey: { verify: () => null } })
  // Every route is guarded, the CORS plugin's OPTIONS catch-all included.
  app.addHook('onRequest', app.authGuard(['apiKey']))
  app.get('/data', async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'OPTIONS', url: '/data', headers: { origin: 'https://front.example', 'access-control-request-method': 'GET' } })
  t.equal(res.statusCode, 204, 'the CORS plugin answered')
  t.strictSame(spans.map((span) => [span.route, span.trail, span.attributes]), [['*', ['start', 'end'], { outcome: 'preflight', method: undefined, errorCode: undefined }]])
})

t.test('429: the rate limits answer inside the traced run', async (t) => {
  const { spans, active } = instrument(t)
  const app = await appWith(t, active, { rateLimit: { perCredential: { max: 1 } } })
  t.equal((await app.inject({ url: '/data', headers: { 'x-api-key': 'key-bob' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/data', headers: { 'x-api-key': 'key-bob' } })).statusCode, 429)
  t.strictSame(spans.map((span) => span.attributes.outcome), ['authenticated', 'rate-limited'])
  t.equal(spans[1]?.attributes.errorCode, 'FST_MULTIAUTH_TOO_MANY_REQUESTS')
})

t.test('the span is the active context while the guard runs the application\'s callbacks', async (t) => {
  const { spans, active } = instrument(t)
  const app = await appWith(t, active)
  seenSpans.length = 0
  await app.inject({ url: '/data', headers: { 'x-api-key': 'key-sync' } })
  await app.inject({ url: '/data', headers: { 'x-api-key': 'key-async' } })
  t.equal(seenSpans.length, 2)
  t.equal(seenSpans[0], spans[0], 'apiKey.verify ran inside the first run\'s span')
  t.equal(seenSpans[1], spans[1], 'and inside the second\'s')
})

t.test('Basic through the failure budgets stays synchronous while traced', async (t) => {
  const { spans, active } = instrument(t)
  const app = Fastify()
  await app.register(multiauth, { basic: { verify: (username, password) => password === 'pw' ? { id: username } : null } })
  app.get('/basic', { onRequest: traced(app.authGuard(['basic'])) }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  for (const [password, status] of [['pw', 200], ['nope', 401]] as const) {
    const res = await app.inject({ url: '/basic', headers: { authorization: basicHeader('ann', password) } })
    t.equal(res.statusCode, status)
    t.equal(res.headers['x-guard-sync'], 'yes', `${status}: done() called before the guard returned`)
  }
  t.strictSame(spans.map((span) => [span.trail, span.attributes.outcome, span.attributes.method]), [
    [['start', 'end'], 'authenticated', 'basic'],
    [['start', 'error', 'end'], 'refused', undefined]
  ])
  t.equal(active.getStore(), undefined, 'no span is active outside the guard run')
})
