import { createHash, createHmac, createPrivateKey, createPublicKey, KeyObject } from 'node:crypto'
import type { JwtNamespace, JwtSecret, JwtVerifier } from './jwt.js'
import { MultiauthOptionError } from '../../core/errors.js'
import { checkKeys, checkObject, checkQuotable, checkString, keyMaterialKind } from '../../core/validate.js'
import type { TokenKey, TokenOptions } from './types.js'

// Key material → the keys the token method signs and verifies with, each with its one
// algorithm pinned from the key type (RFC 8725 §3.1). Everything here runs at registration.

const KEY_KEYS = ['kid', 'secret', 'publicKey', 'privateKey']
const MIN_SECRET_BYTES = 32

export type Algorithm = 'HS256' | 'RS256' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

export interface PreparedKey {
  kid: string | undefined
  algorithm: Algorithm
  /** What @fastify/jwt receives as `secret`. */
  secret: JwtSecret
  canSign: boolean
  /**
   * Names this key without revealing it: an HMAC of a fixed label under the secret, or the
   * SHA-256 of the public key. Refresh records carry the fingerprint of the key that issued them,
   * so another application sharing the store cannot redeem them (and neither can we after the
   * key is removed from `keys`).
   */
  fingerprint: string
  /** Signs with this key; filled by `setup`. */
  jwt?: JwtNamespace
  /** Verifies with this key: fast-jwt's verifier, built once at registration. */
  verify?: JwtVerifier
}

const EC_ALGORITHMS: Record<string, Algorithm> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }

/** The one algorithm a public key may verify, pinned from its type (RFC 8725 §3.1). */
function algorithmFor (key: KeyObject, path: string): Algorithm {
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case 'rsa':
      if ((details.modulusLength ?? 0) < 2048) throw new MultiauthOptionError(`${path}: RSA keys must be at least 2048 bits`)
      return 'RS256'
    case 'ec': {
      const algorithm = EC_ALGORITHMS[details.namedCurve ?? '']
      if (algorithm === undefined) throw new MultiauthOptionError(`${path}: EC keys must use P-256, P-384 or P-521`)
      return algorithm
    }
    case 'ed25519':
      return 'EdDSA'
    default:
      throw new MultiauthOptionError(`${path}: unsupported key type "${String(key.asymmetricKeyType)}" (use RSA, EC P-256 or Ed25519)`)
  }
}

function toKeyObject (material: unknown, kind: 'public' | 'private', path: string): KeyObject {
  if (material instanceof KeyObject) {
    if (material.type === kind) return material
    if (kind === 'public' && material.type === 'private') return createPublicKey(material)
    throw new MultiauthOptionError(`${path} must be a ${kind} key, got a ${material.type} KeyObject`)
  }
  if (typeof material !== 'string' && !Buffer.isBuffer(material)) {
    throw new MultiauthOptionError(`${path} must be a PEM string, a Buffer or a KeyObject`)
  }
  try {
    return kind === 'public' ? createPublicKey(material) : createPrivateKey(material)
  } catch (err) {
    throw new MultiauthOptionError(`${path} is not a valid ${kind} key: ${(err as Error).message}`)
  }
}

function prepareKey (raw: TokenKey, path: string): PreparedKey {
  const { kid, secret, publicKey, privateKey } = raw
  if (kid !== undefined) {
    checkString(kid, `${path}.kid`)
    checkQuotable(kid, `${path}.kid`)
  }
  if (secret !== undefined) {
    if (publicKey !== undefined || privateKey !== undefined) {
      throw new MultiauthOptionError(`${path}: give either secret (HS256) or publicKey/privateKey, not both`)
    }
    if (typeof secret !== 'string' && !Buffer.isBuffer(secret)) throw new MultiauthOptionError(`${path}.secret must be a string or a Buffer`)
    const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret)
    if (bytes.length < MIN_SECRET_BYTES) {
      throw new MultiauthOptionError(
        `${path}.secret must be at least ${MIN_SECRET_BYTES} bytes (256 bits) for HS256, got ${bytes.length}; ` +
        'generate one with: node -e "console.log(require(\'node:crypto\').randomBytes(32).toString(\'base64url\'))"'
      )
    }
    const asKey = keyMaterialKind(bytes)
    if (asKey !== undefined) {
      throw new MultiauthOptionError(`${path}.secret is ${asKey}, not a shared secret: pass key pairs as publicKey/privateKey (anyone holding a public key used as an HS256 secret can sign tokens)`)
    }
    return { kid, algorithm: 'HS256', secret: bytes, canSign: true, fingerprint: createHmac('sha256', bytes).update('fastify-multiauth key fingerprint').digest('base64url').slice(0, 22) }
  }
  if (publicKey === undefined && privateKey === undefined) {
    throw new MultiauthOptionError(`${path} needs a secret (HS256) or a publicKey/privateKey pair`)
  }
  const privateObject = privateKey === undefined ? undefined : toKeyObject(privateKey, 'private', `${path}.privateKey`)
  const publicObject = publicKey === undefined
    ? createPublicKey(privateObject as KeyObject)
    : toKeyObject(publicKey, 'public', `${path}.publicKey`)
  if (publicObject.type !== 'public') throw new MultiauthOptionError(`${path}.publicKey must be a public key`)
  const algorithm = algorithmFor(publicObject, `${path}.publicKey`)
  const publicPem = publicObject.export({ type: 'spki', format: 'pem' }) as string
  const fingerprint = createHash('sha256').update(publicObject.export({ type: 'spki', format: 'der' })).digest('base64url').slice(0, 22)
  if (privateObject === undefined) return { kid, algorithm, secret: { public: publicPem }, canSign: false, fingerprint }
  if (createPublicKey(privateObject).export({ type: 'spki', format: 'pem' }) !== publicPem) {
    throw new MultiauthOptionError(`${path}: privateKey and publicKey are not the same pair`)
  }
  const privatePem = privateObject.export({ type: 'pkcs8', format: 'pem' }) as string
  return { kid, algorithm, secret: { public: publicPem, private: privatePem }, canSign: true, fingerprint }
}

export function prepareKeys (options: TokenOptions): PreparedKey[] {
  const { secret, publicKey, privateKey, keys } = options
  const shorthand = secret !== undefined || publicKey !== undefined || privateKey !== undefined
  if (keys === undefined) {
    if (!shorthand) throw new MultiauthOptionError('token needs token.secret (HS256, at least 32 bytes), token.publicKey/privateKey, or token.keys')
    return [prepareKey({ secret, publicKey, privateKey }, 'token')]
  }
  if (shorthand) throw new MultiauthOptionError('token.keys replaces token.secret/publicKey/privateKey; give one or the other')
  if (!Array.isArray(keys) || keys.length === 0) throw new MultiauthOptionError('token.keys must be a non-empty array')
  const prepared = keys.map((key: unknown, i) => {
    const path = `token.keys[${i}]`
    checkKeys(checkObject(key, path), KEY_KEYS, path)
    return prepareKey(key as TokenKey, path)
  })
  if (prepared.length > 1) {
    const kids = new Set<string>()
    prepared.forEach((key, i) => {
      if (key.kid === undefined) throw new MultiauthOptionError(`token.keys[${i}].kid is required when there are several keys`)
      if (kids.has(key.kid)) throw new MultiauthOptionError(`token.keys[${i}].kid "${key.kid}" is used twice`)
      kids.add(key.kid)
    })
  }
  return prepared
}
