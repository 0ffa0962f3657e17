// rotateApiKey and the state of the old record (issue 18, finding 6): a key that was already
// rotated, revoked or has expired must not be rotated again, since that writes a fresh grace
// period into the old record and brings the old key back.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import multiauth, { generateApiKey, rotateApiKey } from '../src/index.js'
import type { ApiKeyRecord, Duration } from '../src/index.js'

const HOUR = 3_600_000

interface StoredKey extends ApiKeyRecord<{ id: string }> { id: string, start: string }

/** A table of key records and an app that authenticates with them, on a clock the test moves. */
async function rotationApp (t: Test) {
  const clock = { now: Date.UTC(2030, 0, 1) }
  const table = new Map<string, StoredKey>()
  const app = Fastify()
  await app.register(multiauth, { apiKey: { findKey: (id) => table.get(id) ?? null, now: () => clock.now } })
  app.get('/me', { onRequest: app.authGuard(['apiKey']) }, async (request) => request.auth?.user ?? null)
  t.teardown(() => app.close())
  const status = async (key: string): Promise<number> => (await app.inject({ url: '/me', headers: { 'x-api-key': key } })).statusCode
  /** The rotation flow docs/api-keys.md shows: the new record built field by field, the old one updated. */
  function rotate (id: string, grace: Duration): string {
    const old = table.get(id) as StoredKey
    const next = rotateApiKey(old, { grace, now: () => clock.now })
    table.set(next.id, { id: next.id, hash: next.hash, start: next.start, user: old.user, scopes: old.scopes, environment: old.environment })
    table.set(old.id, { ...old, graceEndsAt: next.previous.graceEndsAt, replacedBy: next.previous.replacedBy })
    return next.key
  }
  const issued = generateApiKey({ prefix: 'ak', environment: 'live' })
  table.set(issued.id, { id: issued.id, hash: issued.hash, start: issued.start, user: { id: 'u1' }, environment: 'live' })
  return { app, clock, table, status, rotate, key: issued.key, id: issued.id }
}

// Failed before the fix: the second rotateApiKey accepted the rotated record, the update gave the
// old key a new grace period, and the old key answered 200 again an hour after its grace ended.
t.test('an old key whose grace ended an hour ago cannot be revived by rotating its record again', async (t) => {
  const { clock, table, status, rotate, key, id } = await rotationApp(t)
  const second = rotate(id, '1h')
  clock.now += 2 * HOUR
  t.equal(await status(key), 401, 'the grace ended an hour ago')
  t.equal(await status(second), 200)
  t.throws(() => rotate(id, '1h'), { name: 'TypeError', message: /already rotated/ }, 'rotating the rotated record again is refused')
  t.equal(await status(key), 401, 'the old key stays refused')
  t.equal(table.get(id)?.graceEndsAt, Date.UTC(2030, 0, 1) + HOUR, 'the old record is unchanged')
})

t.test('a record still in its grace period is refused too: a second rotation would extend or replace the grace', async (t) => {
  const { clock, status, rotate, key, id } = await rotationApp(t)
  rotate(id, '60s')
  clock.now += 30_000
  t.throws(() => rotate(id, '24h'), /already rotated/)
  clock.now += 30_000
  t.equal(await status(key), 401, 'the first grace (60 s) still ends the old key')
})

t.test('replacedBy alone, or graceEndsAt alone, marks a rotated record; null (an SQL NULL) is absent', async (t) => {
  const base = { id: 'a1b2c3', prefix: 'ak', environment: 'live' }
  t.throws(() => rotateApiKey({ ...base, replacedBy: 'd4e5f6' }, { grace: '60s' }), /already rotated/)
  t.throws(() => rotateApiKey({ ...base, graceEndsAt: new Date(0) }, { grace: '60s' }), /already rotated/)
  t.throws(() => rotateApiKey({ ...base, graceEndsAt: Date.now() + HOUR }, { grace: '60s' }), /already rotated/)
  const fresh = rotateApiKey({ ...base, replacedBy: null, graceEndsAt: null, expiresAt: null, revoked: null }, { grace: '60s', now: () => 1000 })
  t.same(fresh.previous, { id: base.id, graceEndsAt: 61_000, replacedBy: fresh.id })
})

t.test('same class: an expired or (loosely) revoked record is refused, an unreadable timestamp is an error', async (t) => {
  const base = { id: 'a1b2c3', prefix: 'ak', environment: 'live' }
  t.throws(() => rotateApiKey({ ...base, expiresAt: 1000 }, { grace: '60s', now: () => 1000 }), /expired/, 'expired at this very millisecond')
  t.equal(rotateApiKey({ ...base, expiresAt: 1001 }, { grace: '60s', now: () => 1000 }).previous.graceEndsAt, 1001, 'still valid: the grace is capped by the expiry')
  // Records come from SQL and JSON: the plugin treats any truthy `revoked` as revoked, so does rotation.
  t.throws(() => rotateApiKey({ ...base, revoked: 1 as unknown as boolean }, { grace: '60s' }), /revoked/)
  t.throws(() => rotateApiKey({ ...base, revoked: 't' as unknown as boolean }, { grace: '60s' }), /revoked/)
  t.throws(() => rotateApiKey({ ...base, expiresAt: 'tomorrow' as unknown as number }, { grace: '60s' }), /expiresAt is not a number/)
  t.throws(() => rotateApiKey({ ...base, graceEndsAt: new Date('nope') }, { grace: '60s' }), /graceEndsAt is not a number/)
})

t.test('the new record built as the docs show carries no rotation state: it outlives the old key\'s grace', async (t) => {
  const { clock, table, status, rotate, key, id } = await rotationApp(t)
  const second = rotate(id, '60s')
  const secondId = [...table.keys()].find((k) => k !== id) as string
  t.equal(table.get(secondId)?.graceEndsAt, undefined)
  t.equal(table.get(secondId)?.replacedBy, undefined)
  clock.now += HOUR
  t.equal(await status(key), 401)
  t.equal(await status(second), 200)
  // And the replacement can itself be rotated, once.
  const third = rotate(secondId, '60s')
  t.equal(await status(third), 200)
  t.throws(() => rotate(secondId, '60s'), /already rotated/)
})
