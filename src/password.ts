import argon2 from 'argon2'
import { timingSafeEqual } from 'node:crypto'
import { sha256 } from './hash.js'

/**
 * argon2id parameters: OWASP Password Storage Cheat Sheet's first recommended set
 * (m=19 MiB, t=2, p=1). Hashes made with weaker parameters are reported by `needsRehash`.
 */
export const PASSWORD_HASH_OPTIONS = Object.freeze({
  type: argon2.argon2id,
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1
})

/** Hashes a password with argon2id; the result is a self-describing PHC string. */
export async function hashPassword (password: string): Promise<string> {
  if (typeof password !== 'string') throw new TypeError('hashPassword: password must be a string')
  return await argon2.hash(password, PASSWORD_HASH_OPTIONS)
}

/**
 * Checks a password against a stored argon2 hash in constant time. Resolves `false` for
 * a wrong password; rejects when the stored hash is not a valid argon2 hash (bad data
 * is a server error, not a failed login).
 */
export async function verifyPassword (hash: string, password: string): Promise<boolean> {
  return await argon2.verify(hash, password)
}

/** True when `hash` was made with other (weaker) parameters than `hashPassword` uses now. */
export function needsRehash (hash: string): boolean {
  return argon2.needsRehash(hash, PASSWORD_HASH_OPTIONS)
}

/**
 * Compares two secrets in constant time. Both are hashed first, so neither the length
 * nor the content of `expected` leaks through timing.
 */
export function constantTimeEqual (actual: string, expected: string): boolean {
  return timingSafeEqual(sha256(actual), sha256(expected))
}
