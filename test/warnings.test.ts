// Unsafe configurations are not accepted silently (issue 18): each one emits its Fastify-style
// process warning (process-warning → process.emitWarning) with a stable code, once per process;
// a safe configuration emits none. Before this change every one of these registered without a word.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import csrfProtection from '@fastify/csrf-protection'
import multiauth, { generateApiKey } from '../src/index.js'
import type { MultiauthOptions } from '../src/index.js'
import { WARNINGS } from '../src/core/warnings.js'

const SECRET = 'a-session-secret-of-at-least-32-characters'
const JWT_SECRET = 'a-jwt-secret-of-at-least-32-bytes-long!!'
type Code = keyof typeof WARNINGS

/** The FSTMA warnings `run` makes the process emit, in order. Each subtest starts with every warning unspent. */
async function warningsOf (run: () => Promise<unknown>): Promise<Array<{ code: string, name: string, message: string }>> {
  for (const warning of Object.values(WARNINGS)) warning.emitted = false
  const seen: Array<{ code: string, name: string, message: string }> = []
  const listener = (warning: Error & { code?: string }): void => {
    if (warning.code?.startsWith('FSTMA') === true) seen.push({ code: warning.code, name: warning.name, message: warning.message })
  }
  process.on('warning', listener)
  try {
    await run()
    // process.emitWarning delivers on the next tick.
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.off('warning', listener)
  }
  return seen
}

/** A ready app: `before` registers plugins ahead of fastify-multiauth; every app gets `GET /` and a guarded `GET /me`. */
async function register (t: Test, options: MultiauthOptions, before?: (app: FastifyInstance) => Promise<void>): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await before?.(app)
  await app.register(multiauth, options)
  app.get('/', async () => 'ok')
  const [method] = ['apiKey', 'session', 'basic', 'token'].filter((name) => name in options) as Array<'apiKey' | 'session' | 'basic' | 'token'>
  if (method !== undefined) app.get('/me', { onRequest: app.authGuard([method]) }, async () => 'ok')
  await app.ready()
  return app
}

const codes = (seen: Array<{ code: string }>): string[] => seen.map((w) => w.code)
/** A lookup callback that finds nothing (basic.verify, token.findUser, apiKey.findKey, session.findUser alike). */
const refuse = (): null => null

t.test('a safe configuration of every method emits no warning', async (t) => {
  const seen = await warningsOf(async () => {
    await register(t, {
      basic: { verify: refuse },
      token: { secret: JWT_SECRET, findUser: refuse, expiresIn: '1h' },
      apiKey: { findKey: refuse },
      session: { secret: SECRET, findUser: refuse },
      rateLimit: { failuresPerIp: { max: 20 }, failuresPerUser: { max: 10 } }
    })
    await register(t, { token: { secret: JWT_SECRET, findUser: refuse, expiresIn: '30d', revocation: true } })
  })
  t.same(codes(seen), [])
})

const cases: Array<[Code, string, MultiauthOptions, RegExp]> = [
  ['FSTMA001', 'session.secure: false', { session: { secret: SECRET, findUser: refuse, secure: false } }, /session\.secure: false/],
  ['FSTMA001', 'session.secure: "auto"', { session: { secret: SECRET, findUser: refuse, secure: 'auto', cookieName: 'sid' } }, /session\.secure: "auto"/],
  ['FSTMA002', 'session.csrf: false', { session: { secret: SECRET, findUser: refuse, csrf: false } }, /session\.csrf is false/],
  ['FSTMA003', 'basic with rateLimit.failuresPerIp: false', { basic: { verify: refuse }, rateLimit: { failuresPerIp: false } }, /rateLimit\.failuresPerIp: false/],
  ['FSTMA003', 'basic with rateLimit.failuresPerUser: false', { basic: { verify: refuse }, rateLimit: { failuresPerUser: false } }, /rateLimit\.failuresPerUser: false/],
  ['FSTMA004', 'access tokens valid for 30 days without revocation', { token: { secret: JWT_SECRET, findUser: refuse, expiresIn: '30 days' } }, /token\.expiresIn is 2592000 seconds without token\.revocation/],
  // The message names the option as 1.0 spells it: it said "timeout is 0" after the rename (failed before the fix).
  ['FSTMA005', 'callbackTimeout: 0', { callbackTimeout: 0, apiKey: { findKey: refuse } }, /callbackTimeout is 0/]
]

for (const [code, label, options, message] of cases) {
  t.test(`${code}: ${label} warns once per process, with its code`, async (t) => {
    const seen = await warningsOf(async () => {
      await register(t, options)
      await register(t, options)
    })
    t.same(codes(seen), [code], 'one warning for two registrations')
    t.equal(seen[0]?.name, 'FastifyMultiauthSecurity')
    t.match(seen[0]?.message, message)
  })
}

t.test('no FSTMA003 without basic, nor FSTMA004 for an hour-long token', async (t) => {
  const seen = await warningsOf(async () => {
    await register(t, { apiKey: { findKey: refuse }, rateLimit: { failuresPerIp: false } })
    await register(t, { token: { secret: JWT_SECRET, findUser: refuse, expiresIn: 3_600_000 } })
  })
  t.same(codes(seen), [])
})

t.test('FSTMA002 is not emitted when @fastify/csrf-protection is registered first (the documented replacement)', async (t) => {
  const seen = await warningsOf(async () => {
    await register(t, { session: { secret: SECRET, findUser: refuse, csrf: false } }, async (app) => {
      await app.register(fastifyCookie)
      await app.register(csrfProtection)
    })
  })
  t.same(codes(seen), [])
})

/** An application that registered @fastify/session itself, with `settings`. */
async function applicationSession (t: Test, settings: Record<string, unknown>): Promise<FastifyInstance> {
  const app = await register(t, { session: { findUser: refuse, cookieName: 'appsid' } }, async (app) => {
    await app.register(fastifyCookie)
    await app.register(fastifySession, { secret: SECRET, cookieName: 'appsid', saveUninitialized: false, ...settings } as never)
  })
  return app
}

t.test('the application\'s own @fastify/session: safe settings emit nothing at registration', async (t) => {
  const seen = await warningsOf(async () => { await applicationSession(t, { cookie: { secure: true, sameSite: 'lax' } }) })
  t.same(codes(seen), [])
})

t.test('the application\'s own @fastify/session: Secure off or "auto" (FSTMA001), SameSite=None or unset (FSTMA007)', async (t) => {
  for (const [cookie, code, message] of [
    [{ secure: false, sameSite: 'lax' }, 'FSTMA001', /@fastify\/session cookie\.secure: false/],
    [{ secure: 'auto', sameSite: 'lax' }, 'FSTMA001', /@fastify\/session cookie\.secure: "auto"/],
    [{ secure: true, sameSite: 'none' }, 'FSTMA007', /SameSite=None/],
    [{ secure: true }, 'FSTMA007', /without SameSite/]
  ] as Array<[Record<string, unknown>, Code, RegExp]>) {
    const seen = await warningsOf(async () => { await applicationSession(t, { cookie }) })
    t.same(codes(seen), [code], JSON.stringify(cookie))
    t.match(seen[0]?.message, message)
  }
})

t.test('the application\'s own @fastify/session with saveUninitialized: true: FSTMA006 at the first empty session it saves, once', async (t) => {
  // Secure off, so that sessions are saved over inject's plain HTTP (FSTMA001 says so at registration).
  for (const [saveUninitialized, expected] of [[false, []], [true, ['FSTMA006']]] as Array<[boolean, string[]]>) {
    let app: FastifyInstance | undefined
    const atRegistration = await warningsOf(async () => { app = await applicationSession(t, { saveUninitialized, cookie: { secure: false, sameSite: 'lax' } }) })
    t.same(codes(atRegistration), ['FSTMA001'], 'saveUninitialized cannot be read at registration')
    const atRequests = await warningsOf(async () => {
      const first = await app?.inject('/')
      t.equal(first?.cookies.length, saveUninitialized ? 1 : 0, saveUninitialized ? 'an anonymous session was saved' : 'no anonymous session')
      await app?.inject('/')
    })
    t.same(codes(atRequests), expected, `saveUninitialized: ${String(saveUninitialized)}`)
  }
})

t.test('an API key configuration alone, with defaults, emits nothing (control for the process-wide listener)', async (t) => {
  const key = generateApiKey({ prefix: 'ak', environment: 'test' })
  const seen = await warningsOf(async () => {
    const app = await register(t, { apiKey: { findKey: (id) => (id === key.id ? { user: { id: 'u' }, hash: key.hash } : null) } })
    t.equal((await app.inject({ url: '/me', headers: { 'x-api-key': key.key } })).statusCode, 200)
  })
  t.same(codes(seen), [])
})

t.test('node --disable-warning=FSTMA005 silences that code only (the documented deliberate opt-out)', async (t) => {
  const script = [
    "import Fastify from 'fastify'",
    "import multiauth from './src/index.ts'",
    'const app = Fastify()',
    "await app.register(multiauth, { callbackTimeout: 0, session: { secret: 'a-session-secret-of-at-least-32-characters', findUser: () => null, secure: false } })",
    'await app.ready()',
    'await app.close()'
  ].join('\n')
  const run = async (flags: string[]): Promise<string> => {
    const { stderr } = await promisify(execFile)(process.execPath, [...flags, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url).pathname, timeout: 60_000 })
    return stderr
  }
  const loud = await run([])
  t.match(loud, /\[FSTMA005\]/)
  t.match(loud, /\[FSTMA001\]/)
  const quiet = await run(['--disable-warning=FSTMA005'])
  t.notMatch(quiet, /FSTMA005/)
  t.match(quiet, /\[FSTMA001\]/, 'the other warning still shows')
})
