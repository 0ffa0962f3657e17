import t from 'tap'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Validator } from '@seriousme/openapi-schema-validator'
import { runFlow, startExample, statuses } from './helpers/example-process.js'

// The users API as a user runs it: one process, a real SQLite file, real HTTP.

const basic = (user: string, password: string): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')
const INVALID = { error: 'unauthorized', message: 'Invalid credentials' }
const UNCONFIRMED = { error: 'forbidden', message: 'Unconfirmed account' }

t.test('examples/sqlite-users-api over real HTTP', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sqlite-users-api-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const dbFile = join(dir, 'users.sqlite')
  const { base, flow, stdout } = await startExample(t, 'sqlite-users-api', { DB_FILE: dbFile, JWT_SECRET: '' })
  t.match(flow, /^TOKEN=\$\(curl -s -u alice@example\.com:wonderland -X POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/tokens\/ \| sed /m, 'prints the token request')
  const out = await runFlow(flow, dir)
  t.same(statuses(out), [200, 200, 403], 'the printed curl lines, run as printed: token as Basic user name, as Bearer; bob unconfirmed')
  t.match(out, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/m, 'the token, extracted by the printed sed')
  t.match(stdout, `created and seeded ${dbFile}`, 'the database is created on first start')

  // The database is a real SQLite file holding argon2id hashes, never passwords.
  t.ok(existsSync(dbFile))
  const db = new Database(dbFile, { readonly: true })
  const rows = db.prepare('SELECT email, password_hash, confirmed FROM users ORDER BY id').all() as Array<{ email: string, password_hash: string, confirmed: number }>
  db.close()
  t.same(rows.map((r) => [r.email, r.confirmed]), [['alice@example.com', 1], ['bob@example.com', 0]])
  t.ok(rows.every((r) => r.password_hash.startsWith('$argon2id$')), 'passwords are stored as argon2id hashes')

  const call = async (path: string, authorization?: string, method = 'GET'): Promise<{ status: number, body: any, challenge: string | null }> => {
    const res = await fetch(base + path, { method, headers: authorization === undefined ? {} : { authorization } })
    return { status: res.status, body: await res.json(), challenge: res.headers.get('www-authenticate') }
  }

  // Basic (email + password) → token
  const minted = await call('/api/v1/tokens/', basic('alice@example.com', 'wonderland'), 'POST')
  t.equal(minted.status, 200)
  t.equal(minted.body.expiration, 3600)
  t.match(minted.body.token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT')
  const token = minted.body.token as string

  // The token as the Basic user name with an empty password, and as a Bearer token
  const me = { id: 1, email: 'alice@example.com', confirmed: true }
  t.same((await call('/api/v1/users/me', basic(token, ''))).body, me, 'email_or_token: the token as the Basic user name')
  t.same((await call('/api/v1/users/me', `Bearer ${token}`)).body, me, 'and as a Bearer token')
  t.same((await call('/api/v1/users/2', basic(token, ''))).body, { id: 2, email: 'bob@example.com', confirmed: false })

  // A token cannot mint a token
  for (const authorization of [basic(token, ''), `Bearer ${token}`]) {
    const res = await call('/api/v1/tokens/', authorization, 'POST')
    t.equal(res.status, 401, 'a token cannot mint a token')
    t.same(res.body, INVALID)
    t.match(res.challenge, /^Basic realm="users-api"/, 'with a Basic challenge')
  }

  // Unconfirmed account: 403 on every route of the blueprint, token route included
  for (const [path, method] of [['/api/v1/users/me', 'GET'], ['/api/v1/tokens/', 'POST']] as const) {
    const res = await call(path, basic('bob@example.com', 'builder'), method)
    t.equal(res.status, 403, `unconfirmed: ${method} ${path}`)
    t.same(res.body, UNCONFIRMED)
  }

  // Wrong password, unknown email, no credentials, a forged token: the same JSON 401 with challenges
  for (const authorization of [basic('alice@example.com', 'nope'), basic('nobody@example.com', 'wonderland'), undefined, basic(token.slice(0, -2) + (token.endsWith('xx') ? 'yy' : 'xx'), '')]) {
    const res = await call('/api/v1/users/me', authorization)
    t.equal(res.status, 401)
    t.same(res.body, INVALID, 'the API\'s one JSON error shape')
    t.match(res.challenge, /Basic realm="users-api", charset="UTF-8"/)
  }

  // The OpenAPI document: valid, with the schemes and the requirements of each route
  const doc = (await call('/openapi.json')).body
  const result = await new Validator().validate(doc)
  t.ok(result.valid, 'the OpenAPI document validates')
  if (!result.valid) t.comment(JSON.stringify(result.errors, null, 2))
  t.same(doc.components.securitySchemes, {
    basic: { type: 'http', scheme: 'basic', description: 'HTTP Basic; an access token as the user name with an empty password also works' },
    token: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }
  })
  t.same(doc.paths['/api/v1/users/me'].get.security, [{ basic: [] }, { token: [] }], 'the blueprint guard: Basic or token')
  t.same(doc.paths['/api/v1/users/{id}'].get.security, [{ basic: [] }, { token: [] }])
  t.same(doc.paths['/api/v1/tokens/'].post.security, [{ basic: [] }], 'the token route states Basic only')
  t.notOk('/openapi.json' in doc.paths, 'the document route is hidden')
})
