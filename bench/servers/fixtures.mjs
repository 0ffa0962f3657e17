// Credentials shared by the variants, so ours and the peers check the same things.
import { createHash, generateKeyPairSync } from 'node:crypto'

export const USERNAME = 'alice'
export const PASSWORD = 'correct horse battery staple'
export const USER = { id: 'alice', name: 'Alice' }
export const API_KEY = 'mak_live_3b1f0e6a9c2d4e5f8a7b6c5d4e3f2a1b'
export const JWT_SECRET = 'a-benchmark-secret-of-at-least-32-bytes!!'

export function basicAuthorization (username = USERNAME, password = PASSWORD) {
  return 'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64')
}

export function sha256 (value) {
  return createHash('sha256').update(value).digest('hex')
}

/** An API-key table as an application stores it: hashes of the keys, never the keys. */
export const API_KEYS_BY_HASH = new Map([[sha256(API_KEY), USER]])
for (let i = 0; i < 999; i++) API_KEYS_BY_HASH.set(sha256(`mak_live_other_${i}`), { id: `user${i}` })

/** An Ed25519 pair for the EdDSA variants (ours and the peer each sign their own token with it). */
export const ED25519 = generateKeyPairSync('ed25519', {
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
})

/** A user lookup by id, as `token.lookup` / `session.lookup` do it: an in-memory table. */
export const USERS_BY_ID = new Map([[USER.id, USER]])
