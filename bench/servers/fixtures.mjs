// Credentials shared by the variants, so ours and the peers check the same things.
import * as crypto from 'node:crypto'

export const USERNAME = 'alice'
export const PASSWORD = 'correct horse battery staple'
export const USER = { id: 'alice', name: 'Alice' }
export const API_KEY = 'mak_live_3b1f0e6a9c2d4e5f8a7b6c5d4e3f2a1b'
export const JWT_SECRET = 'a-benchmark-secret-of-at-least-32-bytes!!'

export function basicAuthorization (username = USERNAME, password = PASSWORD) {
  return 'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64')
}

// Hex SHA-256, in one native call where Node has it (≥ 20.12), as the package's hashApiKey does.
// Ours (ours-api-key, ours-any) and the peer (peer-passport) hash keys with this same function.
export const sha256 = typeof crypto.hash === 'function'
  ? (value) => crypto.hash('sha256', value, 'hex')
  : (value) => crypto.createHash('sha256').update(value).digest('hex')

/** An API-key table as an application stores it: hashes of the keys, never the keys. */
export const API_KEYS_BY_HASH = new Map([[sha256(API_KEY), USER]])
for (let i = 0; i < 999; i++) API_KEYS_BY_HASH.set(sha256(`mak_live_other_${i}`), { id: `user${i}` })

/** An Ed25519 pair for the EdDSA variants (ours and the peer each sign their own token with it). */
export const ED25519 = crypto.generateKeyPairSync('ed25519', {
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
})

/** A user lookup by id, as `token.findUser` / `session.findUser` do it: an in-memory table. */
export const USERS_BY_ID = new Map([[USER.id, USER]])
