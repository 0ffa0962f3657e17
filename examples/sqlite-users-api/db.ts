// The API's users in a real SQLite file (better-sqlite3), created and seeded on first start.
import Database from 'better-sqlite3'
import { hashPassword } from '../../src/index.js'

/** What the API exposes as `request.auth.user`: never the password hash. */
export interface User { id: number, email: string, confirmed: boolean }

interface UserRow { id: number, email: string, password_hash: string, confirmed: number }

export interface UserStore {
  /** The user and its argon2id hash, for the password check. */
  byEmail (email: string): { user: User, passwordHash: string } | undefined
  byId (id: number): User | undefined
  close (): void
}

/** The users a new database starts with: alice has confirmed her account, bob has not (403 "Unconfirmed account"). */
const INITIAL_USERS = [
  { email: 'alice@example.com', password: 'wonderland', confirmed: true },
  { email: 'bob@example.com', password: 'builder', confirmed: false }
]

const toUser = (row: UserRow): User => ({ id: row.id, email: row.email, confirmed: row.confirmed === 1 })

/** Opens (or creates and seeds) the database file. `created` says whether this start made it. */
export async function openUsers (file: string): Promise<{ users: UserStore, created: boolean }> {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec(`CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    confirmed     INTEGER NOT NULL DEFAULT 0
  )`)
  const count = db.prepare('SELECT count(*) AS n FROM users').get() as { n: number }
  const created = count.n === 0
  if (created) {
    // Hash first (argon2 is asynchronous), then insert in one transaction.
    const rows = await Promise.all(INITIAL_USERS.map(async (u) => ({ ...u, hash: await hashPassword(u.password) })))
    const insert = db.prepare('INSERT INTO users (email, password_hash, confirmed) VALUES (?, ?, ?)')
    db.transaction(() => { for (const r of rows) insert.run(r.email, r.hash, r.confirmed ? 1 : 0) })()
  }
  // Prepared once: each request runs a compiled statement.
  const findByEmail = db.prepare('SELECT id, email, password_hash, confirmed FROM users WHERE email = ?')
  const findById = db.prepare('SELECT id, email, password_hash, confirmed FROM users WHERE id = ?')
  return {
    created,
    users: {
      byEmail (email) {
        const row = findByEmail.get(email) as UserRow | undefined
        return row === undefined ? undefined : { user: toUser(row), passwordHash: row.password_hash }
      },
      byId (id) {
        const row = findById.get(id) as UserRow | undefined
        return row === undefined ? undefined : toUser(row)
      },
      close () { db.close() }
    }
  }
}
