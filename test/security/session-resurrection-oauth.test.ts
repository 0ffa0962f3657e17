// [Issue 18, finding 1 (high), "same with an OAuth re-login"] The OAuth2 callback logs in through
// the same path as authSessions.login(): it regenerates the session id, so the id the browser came
// with is destroyed (a tombstone). A request that loaded that session before the re-login (an
// attacker's slow request carrying the stolen cookie) must not save it back when it finishes.
// Against the REAL in-process OpenID provider (test/helpers/oidc-provider.ts) and real redis-server
// shared by two instances; and with the in-process store on one instance.
// These tests failed with the session save made unconditional again (store.set in place of
// setUnlessEqual(…, TOMBSTONE) / kSetLocalUnless in src/methods/session/store-adapter.ts): after the
// slow request finished, the pre-login cookie got 200 on both instances and Redis held it as a live
// session again.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import multiauth, { MemoryStore, RedisStore } from '../../src/index.js'
import type { MultiauthStore } from '../../src/index.js'
import { CookieJar, runCodeFlow, startOidcProvider } from '../helpers/oidc-provider.js'
import type { TestProvider } from '../helpers/oidc-provider.js'
import { freePort } from '../helpers/redis.js'
import { eachTopology } from '../helpers/redis-topology.js'
import { sessionStoreKey, slowPost } from '../helpers/slow-request.js'
import { SESSION_SECRET } from '../helpers/session-app.js'

const TOMBSTONE = '!destroyed'

interface Instance { app: FastifyInstance, port: number, base: string, loaded: () => Promise<void> }

/** An app with session + oauth2 against `provider`, a guarded GET /me and POST /slow, listening on `port`. */
async function instance (t: Test, store: MultiauthStore, provider: TestProvider, port: number): Promise<Instance> {
  const base = `http://localhost:${port}`
  const app = Fastify()
  await app.register(multiauth, {
    store,
    session: { secret: SESSION_SECRET, secure: false, findUser: (id) => ({ id }) },
    oauth2: {
      baseUrl: base,
      providers: { local: { issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret } },
      findUser: (profile) => ({ id: `local:${profile.id}` })
    }
  })
  let signal: () => void = () => {}
  const loaded = new Promise<void>((resolve) => { signal = resolve })
  // After @fastify/session's own onRequest hook: the session of this request is loaded now.
  app.addHook('onRequest', async (request) => { if (request.url === '/slow') signal() })
  app.get('/me', { onRequest: app.authGuard(['session']) }, async (request) => request.auth?.user ?? null)
  app.post('/slow', async () => 'done')
  await app.listen({ port, host: 'localhost' })
  t.teardown(() => app.close())
  return { app, port, base, loaded: async () => await loaded }
}


async function status (base: string, cookie: string): Promise<number> {
  const response = await fetch(`${base}/me`, { headers: { cookie } })
  await response.arrayBuffer()
  return response.status
}

/** An OAuth2 login through `base` with the jar's cookies; the session cookie it ends with. */
async function oauthLogin (t: Test, jar: CookieJar, base: string, provider: TestProvider): Promise<string> {
  const { callback } = await runCodeFlow(jar, `${base}/auth/local`, provider.issuer)
  await callback.arrayBuffer()
  t.equal(callback.status, 302, `the OAuth2 login through ${base} succeeds`)
  const sid = jar.cookies.get('sid')
  if (sid === undefined) throw new Error('no session cookie after the OAuth2 login')
  return `sid=${sid}`
}

/**
 * The race: a login (S1), a slow request carrying S1 on `slowOn` (session loaded, body still
 * coming), a second OAuth2 login with S1 through `reloginOn` (S1 destroyed, S2 issued), then the
 * slow request finishes. Returns S1 and S2.
 */
async function race (t: Test, provider: TestProvider, slowOn: Instance, reloginOn: Instance, all: Instance[]): Promise<{ old: string, fresh: string }> {
  const jar = new CookieJar()
  const old = await oauthLogin(t, jar, slowOn.base, provider)
  for (const i of all) t.equal(await status(i.base, old), 200, `S1 (the stolen cookie) works on ${i.base}`)

  const slow = slowPost('localhost', slowOn.port, old)
  t.teardown(() => slow.socket.destroy())
  await slowOn.loaded() // the session is loaded; the body is still coming

  // The victim logs in again through the provider, with S1 in the browser: the callback regenerates the id.
  const fresh = await oauthLogin(t, jar, reloginOn.base, provider)
  t.not(fresh, old, 'the OAuth2 re-login issued a new session id')
  for (const i of all) t.equal(await status(i.base, old), 401, `S1 is dead on ${i.base} right after the re-login`)

  t.match(await slow.finish(), /^HTTP\/1\.1 200/, 'the slow request itself completes')
  return { old, fresh }
}

eachTopology(t, 'two instances sharing real Redis: a slow request started before an OAuth2 re-login cannot bring the old session back', async (t, redis) => {
  const stores = [new RedisStore(redis.storeOptions()), new RedisStore(redis.storeOptions())]
  t.teardown(async () => { for (const s of stores) await s.close() })
  const ports = [await freePort(), await freePort()]
  const provider = await startOidcProvider({ redirectUris: ports.map((p) => `http://localhost:${p}/auth/local/callback`) })
  t.teardown(provider.close)
  const a = await instance(t, stores[0] as RedisStore, provider, ports[0] as number)
  const b = await instance(t, stores[1] as RedisStore, provider, ports[1] as number)

  const { old, fresh } = await race(t, provider, a, b, [a, b])

  t.equal(await status(b.base, old), 401, 'B: S1 still dead after the slow request finished')
  t.equal(await status(a.base, old), 401, 'A: too')
  const client = (stores[0] as RedisStore).client
  t.equal(await client.get(sessionStoreKey(old)), TOMBSTONE, 'Redis holds the tombstone for S1, not a session')
  for (const i of [a, b]) t.equal(await status(i.base, fresh), 200, `the new session works on ${i.base}`)
})

t.test('in-process store: a slow request started before an OAuth2 re-login on the same instance saves nothing', async (t) => {
  const port = await freePort()
  const provider = await startOidcProvider({ redirectUris: [`http://localhost:${port}/auth/local/callback`] })
  t.teardown(provider.close)
  const store = new MemoryStore()
  const app = await instance(t, store, provider, port)

  const { old, fresh } = await race(t, provider, app, app, [app])

  t.equal(await status(app.base, old), 401, 'S1 still dead after the slow request finished')
  t.equal(await store.get(sessionStoreKey(old).slice('multiauth:'.length)), TOMBSTONE, 'the store holds the tombstone for S1, not a session')
  t.equal(await status(app.base, fresh), 200, 'the new session works')
})
