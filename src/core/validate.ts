import { createPrivateKey, createPublicKey } from 'node:crypto'
import { MultiauthOptionError } from './errors.js'

// Small registration-time checks shared by every method. They throw
// MultiauthOptionError naming the option path, so a misconfiguration is found at
// startup, never at request time.

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function checkObject (value: unknown, path: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw new MultiauthOptionError(`${path} must be an object`)
  return value
}

// Options 0.1 had under another name: the refusal says what to write instead, so an upgrade
// is a matter of reading the error (docs/migration.md has the full list).
const RENAMED_IN_1_0: Readonly<Record<string, string>> = {
  'options.timeout': 'callbackTimeout',
  'basic.findUser': 'basic.findCredential',
  'token.lookup': 'token.findUser',
  'session.lookup': 'session.findUser',
  'apiKey.lookup': 'apiKey.findKey',
  'oauth2.onLogin': 'oauth2.findUser',
  'rateLimit.max': 'rateLimit.perCredential.max',
  'rateLimit.timeWindow': 'rateLimit.perCredential.timeWindow'
}

export function checkKeys (obj: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      const renamed = Object.hasOwn(RENAMED_IN_1_0, `${path}.${key}`) ? `; renamed in 1.0: use ${RENAMED_IN_1_0[`${path}.${key}`]}` : ''
      throw new MultiauthOptionError(`unknown option ${path}.${key} (allowed: ${allowed.join(', ')})${renamed}`)
    }
  }
}

export function checkFunction (value: unknown, path: string, required = true): void {
  if (value === undefined && !required) return
  if (typeof value !== 'function') throw new MultiauthOptionError(`${path} must be a function`)
}

export function checkString (value: unknown, path: string, required = true): void {
  if (value === undefined && !required) return
  if (typeof value !== 'string' || value.length === 0) {
    throw new MultiauthOptionError(`${path} must be a non-empty string`)
  }
}

export function checkBoolean (value: unknown, path: string): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new MultiauthOptionError(`${path} must be a boolean`)
  }
}

export function checkPositiveInteger (value: unknown, path: string): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) <= 0)) {
    throw new MultiauthOptionError(`${path} must be a positive integer`)
  }
}

/** A value that may go inside a quoted-string of a WWW-Authenticate header (RFC 7230 §3.2.6). */
export function checkQuotable (value: string, path: string): void {
  // eslint-disable-next-line no-control-regex
  if (/["\\\u0000-\u001f\u007f]/.test(value)) {
    throw new MultiauthOptionError(`${path} must not contain quotes, backslashes or control characters`)
  }
}

/**
 * What a would-be shared secret (HS256, cookie signing) is when it is really key material: a public key used as an HMAC
 * secret is the algorithm-confusion attack (RFC 8725 §2.1; fast-jwt CVE-2026-34950 class), since
 * public keys are public. Checked whatever surrounds it (a BOM, a newline, spaces): a PEM block
 * anywhere, anything Node parses as a key (PEM, DER SPKI/PKCS#1/PKCS#8), or a JWK (JSON with `kty`).
 */
export function keyMaterialKind (bytes: Buffer): string | undefined {
  const text = bytes.toString('utf8')
  if (text.includes('-----BEGIN')) return 'a PEM block'
  const attempts: Array<() => unknown> = [
    () => createPublicKey(bytes),
    () => createPublicKey({ key: bytes, format: 'der', type: 'spki' }),
    () => createPublicKey({ key: bytes, format: 'der', type: 'pkcs1' }),
    () => createPrivateKey({ key: bytes, format: 'der', type: 'pkcs8' })
  ]
  for (const attempt of attempts) {
    try {
      attempt()
      return 'a key Node can parse'
    } catch {}
  }
  let json: unknown
  try {
    json = JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch {}
  if (typeof json === 'object' && json !== null && ('kty' in json || 'keys' in json)) return 'a JWK'
  return undefined
}
