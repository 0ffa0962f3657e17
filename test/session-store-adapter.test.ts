import t from 'tap'
import fc from 'fast-check'
import { MemoryStore } from '../src/index.js'
import type { MultiauthStore } from '../src/index.js'
import { SessionStoreAdapter } from '../src/methods/session/store-adapter.js'
import { cookieFrom, sessionApp } from './helpers/session-app.js'
import { fuzzParams } from './helpers/security.js'

// With the in-process MemoryStore, SessionStoreAdapter keeps sessions as snapshots instead of
// JSON text. Whatever a session holds, what comes back must be exactly what the JSON path (the
// one every other store, Redis included, takes) gives back.

/**
 * The same MemoryStore behind the MultiauthStore interface only: the adapter takes the JSON path,
 * with the atomic conditional write (`setUnlessEqual`) RedisStore has.
 */
function jsonOnly (store: MemoryStore): MultiauthStore {
  return {
    get: async (key) => await store.get(key),
    set: async (key, value, ttl) => await store.set(key, value, ttl),
    delete: async (key) => await store.delete(key),
    setUnlessEqual: async (key, value, ttl, unless) => await store.setUnlessEqual(key, value, ttl, unless)
  }
}

function roundTrip (adapter: SessionStoreAdapter, id: string, session: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    adapter.set(id, session, (err) => {
      if (err !== undefined) return reject(err)
      adapter.get(id, (err, result) => err === null ? resolve(result) : reject(err))
    })
  })
}

/** What @fastify/session hands to a store: a cookie with toJSON, data keys, our frozen record. */
function sessionLike (data: Record<string, unknown>, expires = new Date(Date.now() + 60_000)): Record<string, unknown> {
  return {
    cookie: { toJSON: () => ({ expires, originalMaxAge: 60_000, path: '/', httpOnly: true, sameSite: 'lax', secure: false, domain: null }), expires },
    multiauth: Object.freeze({ u: 'ann', t: 1_700_000_000_000 }),
    ...data
  }
}

t.test('snapshot path and JSON path give back the same session, for arbitrary session data', async (t) => {
  const local = new SessionStoreAdapter(new MemoryStore(), 60_000)
  const json = new SessionStoreAdapter(jsonOnly(new MemoryStore()), 60_000)
  let compared = 0
  await fc.assert(fc.asyncProperty(
    fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== 'cookie' && k !== 'multiauth' && k !== '__proto__'), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }),
    async (data) => {
      const expires = new Date(Date.now() + 60_000)
      const a = await roundTrip(local, 'id-1', sessionLike(data, expires))
      const b = await roundTrip(json, 'id-1', sessionLike(data, expires))
      compared++
      // Dates become strings on the JSON path: compare both as JSON would see them.
      return JSON.stringify(a) === JSON.stringify(b)
    }
  ), fuzzParams(t, 500))
  t.equal(compared, 500, '500 sessions compared')
})

t.test('a snapshot is a copy: changing the session object after saving it changes nothing stored', async (t) => {
  const store = new MemoryStore()
  const adapter = new SessionStoreAdapter(store, 60_000)
  const cart = { items: [1, 2] }
  const session = sessionLike({ cart, when: new Date(0), gone: undefined, fn: () => 1 })
  const first = await roundTrip(adapter, 'id-2', session) as Record<string, any>
  cart.items.push(3)
  first.cart.items.push(4)
  const second = await roundTrip(adapter, 'id-3', sessionLike({ cart: { items: [9] } })) as Record<string, any>
  t.same(second.cart, { items: [9] })
  const again = await new Promise<Record<string, any>>((resolve) => adapter.get('id-2', (_err, result) => resolve(result)))
  t.same(again.cart, { items: [1, 2] }, 'neither the original object nor a restored copy reaches the store')
  t.not(again.cart, first.cart, 'every read gets its own objects')
  t.equal(again.when, '1970-01-01T00:00:00.000Z', 'a Date comes back as JSON gives it back (a string)')
  t.notOk('gone' in again || 'fn' in again, 'undefined and functions are dropped, as JSON drops them')
  t.equal(again.multiauth, first.multiauth, 'the frozen login record is shared, not copied')
})

t.test('the public MemoryStore API shows a snapshot as the JSON the other stores hold, and strings written through it are read back', async (t) => {
  const store = new MemoryStore()
  const app = await sessionApp(new Map([['u1', { id: 'u1', name: 'Alice' }]]), { plugin: { store } })
  t.teardown(() => app.close())
  const cookie = cookieFrom(await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } }), 'sid') as string
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, 'logged in')
  const { createHash } = await import('node:crypto')
  const signed = decodeURIComponent(cookie.slice(4))
  const key = 'sess:' + createHash('sha256').update(signed.slice(0, signed.lastIndexOf('.'))).digest('base64url')
  const raw = await store.get(key)
  t.type(raw, 'string', 'get returns a string')
  const parsed = JSON.parse(raw as string)
  t.match(parsed, { multiauth: { u: 'u1' }, cookie: { httpOnly: true, path: '/' } }, 'the record and the cookie, as JSON')
  // Written back as a string (what a Redis dump restore would do): still a valid session.
  await store.set(key, raw as string, 60_000)
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, 'a string entry is read through the JSON path')
  await store.set(key, '{not json', 60_000)
  t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 401, 'a corrupt string entry is no session')
})

t.test('a value JSON refuses (bigint) fails the same way on both paths', async (t) => {
  const local = new SessionStoreAdapter(new MemoryStore(), 60_000)
  const json = new SessionStoreAdapter(jsonOnly(new MemoryStore()), 60_000)
  t.throws(() => local.set('x', sessionLike({ n: 1n }), () => {}), TypeError, 'snapshot path throws')
  t.throws(() => json.set('x', sessionLike({ n: 1n }), () => {}), TypeError, 'JSON path throws')
})

t.test('a login without a session cookie leaves no tombstone (its session was never stored); a stored session regenerated at login does', async (t) => {
  const store = new MemoryStore()
  const app = await sessionApp(new Map([['u1', { id: 'u1', name: 'Alice' }]]), { plugin: { store } })
  t.teardown(() => app.close())
  const first = await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' } })
  t.equal(first.statusCode, 200)
  // Before: 2 entries, the session and a 24 h tombstone for an id nobody ever saw.
  t.equal(store.size, 1, 'only the logged-in session is stored')

  // An anonymous session that was saved (a cart), then a login: its id must stay destroyed.
  const cart = await app.inject({ method: 'POST', url: '/cart' })
  const cookie = cookieFrom(cart, 'sid') as string
  t.equal(store.size, 2, 'the anonymous session is stored')
  const second = await app.inject({ method: 'POST', url: '/login', payload: { id: 'u1' }, headers: { cookie } })
  t.equal(second.statusCode, 200)
  t.equal(store.size, 3, 'the new session, and a tombstone where the anonymous one was')
  const reused = await app.inject({ url: '/me', headers: { cookie } })
  t.equal(reused.statusCode, 401, 'the pre-login id is worthless after login')
})
