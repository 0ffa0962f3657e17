// basic.onRehash and a concurrent password reset (issue 18, finding 5), and onRehash under the
// one error path (bounded by `callbackTimeout`, the login proceeds).
import { Writable } from 'node:stream'
import t from 'tap'
import argon2 from 'argon2'
import { hashPassword, needsRehash, verifyPassword } from '../src/index.js'
import type { BasicOptions } from '../src/index.js'
import { basicHeader, buildApp } from './helpers/app.js'

const weakHash = async (password: string): Promise<string> =>
  await argon2.hash(password, { type: argon2.argon2id, memoryCost: 8192, timeCost: 1, parallelism: 1 })

/** One user row, and the conditional update docs/basic.md shows for onRehash. */
function userTable (passwordHash: string) {
  const row = { id: 'u1', passwordHash }
  return {
    row,
    /** UPDATE users SET password_hash = newHash WHERE id = id AND password_hash = oldHash */
    replacePasswordHash (id: string, newHash: string, oldHash: string): number {
      if (id !== row.id || row.passwordHash !== oldHash) return 0
      row.passwordHash = newHash
      return 1
    }
  }
}

async function rehashApp (basic: Partial<BasicOptions>, callbackTimeout?: number) {
  let logged: (line: Record<string, any>) => void = () => {}
  /** The `basic.onRehash failed` log line (it comes after the response: the login does not wait for onRehash). */
  const failure = new Promise<Record<string, any>>((resolve) => { logged = resolve })
  const stream = new Writable({
    write (chunk, _e, done) {
      const line = JSON.parse(String(chunk))
      if (line.msg === 'multiauth: basic.onRehash failed') logged(line)
      done()
    }
  })
  const app = await buildApp({ basic: basic as BasicOptions, ...(callbackTimeout === undefined ? {} : { callbackTimeout }) }, { logger: { level: 'error', stream } })
  app.get('/me', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  return { app, failure }
}

/** `pending`, or "hung" after 20 s: a hang shows as a failed assertion, not as a tap timeout. */
async function within20s<T> (pending: Promise<T>): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<'hung'>((resolve) => { timer = setTimeout(() => resolve('hung'), 20_000) })
  try {
    return await Promise.race([pending, hung])
  } finally {
    clearTimeout(timer)
  }
}

// Failed before the fix: onRehash got (user, newHash, request), so the application could not make the
// update conditional on the verified hash (here: oldHash was the request object, and nothing was upgraded).
t.test('onRehash receives the verified hash: the conditional update upgrades it when nothing changed', async (t) => {
  const table = userTable(await weakHash('old-pw'))
  const calls: unknown[][] = []
  const { app } = await rehashApp({
    findCredential: () => ({ user: { id: table.row.id }, passwordHash: table.row.passwordHash }),
    onRehash: (user, newHash, oldHash) => {
      calls.push([user, newHash, oldHash])
      table.replacePasswordHash((user as { id: string }).id, newHash, oldHash)
    }
  })
  t.teardown(() => app.close())
  const verified = table.row.passwordHash
  t.equal((await app.inject({ url: '/me', headers: { authorization: basicHeader('u1', 'old-pw') } })).statusCode, 200)
  t.equal(calls.length, 1)
  t.equal(calls[0]?.[2], verified, 'the third argument is the hash that was verified')
  t.not(table.row.passwordHash, verified, 'upgraded')
  t.notOk(needsRehash(table.row.passwordHash), 'to the current parameters')
  t.ok(await verifyPassword(table.row.passwordHash, 'old-pw'))
})

// The race itself. Before the fix the docs' example (an unconditional update with the fresh hash of
// the OLD password) overwrote this reset, and a conditional update could not be written: there was no
// verified hash to compare with (the test above fails on the old code; this one passes there only
// because its third argument was the request, so the update never matched and nothing was upgraded).
t.test('a password reset that lands between the login\'s read and its rehash is not undone', async (t) => {
  const table = userTable(await weakHash('old-pw'))
  const resetHash = await hashPassword('new-pw')
  const { app } = await rehashApp({
    findCredential: () => {
      const record = { user: { id: table.row.id }, passwordHash: table.row.passwordHash }
      // The reset commits right after this login read the row (another request, another instance).
      table.row.passwordHash = resetHash
      return record
    },
    onRehash: (user, newHash, oldHash) => { table.replacePasswordHash((user as { id: string }).id, newHash, oldHash) }
  })
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/me', headers: { authorization: basicHeader('u1', 'old-pw') } })).statusCode, 200, 'the login in flight still succeeds')
  t.equal(table.row.passwordHash, resetHash, 'the reset stands')
  t.ok(await verifyPassword(table.row.passwordHash, 'new-pw'), 'the new password works')
  t.notOk(await verifyPassword(table.row.passwordHash, 'old-pw'), 'the old password no longer does')
})

// Failed before the fix: the login awaited onRehash, so a hanging database write turned a correct
// password into a 503 at the guard's callbackTimeout (and, outside a guard, held the login indefinitely).
t.test('a hanging onRehash does not hold the login: it is bounded by callbackTimeout in the background, and the timeout is logged', async (t) => {
  const weak = await weakHash('pw')
  const { app, failure } = await rehashApp({
    findCredential: () => ({ user: { id: 'u1' }, passwordHash: weak }),
    onRehash: async () => await new Promise<void>(() => {})
  }, 5000)
  t.teardown(() => app.close())
  t.equal(await within20s(app.inject({ url: '/me', headers: { authorization: basicHeader('u1', 'pw') } }).then((res) => res.statusCode)), 200)
  const logged = await within20s(failure)
  t.equal(logged === 'hung' ? 'hung' : logged.err?.code, 'FST_MULTIAUTH_CALLBACK_TIMEOUT', 'the timeout is in the log')
})

t.test('an onRehash that throws is logged under the one error path, with the original as cause', async (t) => {
  const weak = await weakHash('pw')
  const { app, failure } = await rehashApp({
    findCredential: () => ({ user: { id: 'u1' }, passwordHash: weak }),
    onRehash: () => { throw new Error('db read-only marker') }
  })
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/me', headers: { authorization: basicHeader('u1', 'pw') } })).statusCode, 200)
  const logged = await within20s(failure)
  t.equal(logged === 'hung' ? 'hung' : logged.err?.code, 'FST_MULTIAUTH_CALLBACK_ERROR')
  t.match(JSON.stringify(logged), /db read-only marker/, 'the original error is kept as cause')
})
