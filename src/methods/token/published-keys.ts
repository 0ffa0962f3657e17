import { createPublicKey } from 'node:crypto'
import type { JsonWebKey } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { MultiauthOptionError } from '../../core/errors.js'
import { pluginRouteErrorHandler } from '../../core/route-errors.js'
import { checkBoolean, checkKeys, checkObject, checkString } from '../../core/validate.js'
import type { PreparedKey } from './keys.js'
import { isSafeUrl } from './remote-keys.js'
import type { PublishKeysOptions } from './types.js'

// `token.publishKeys`: the public halves of the token method's asymmetric keys as a JWK Set
// (RFC 7517 §5), so that other services verify our tokens without a copy of our keys, and
// optionally a minimal discovery document naming it. Both bodies are built at registration;
// the routes send a prebuilt buffer.

const DEFAULT_PATH = '/.well-known/jwks.json'
const DISCOVERY_PATH = '/.well-known/openid-configuration'
/** Short enough that a rotation (new key published before it signs) reaches verifiers within minutes. */
const CACHE_CONTROL = 'public, max-age=300'
// For the OpenAPI document only: the bodies are prebuilt buffers, which Fastify sends without serializing.
const JWKS_SCHEMA = {
  type: 'object',
  required: ['keys'],
  properties: { keys: { type: 'array', items: { type: 'object', additionalProperties: true, description: 'A public JWK with kid, alg and use' } } }
} as const
const DISCOVERY_SCHEMA = {
  type: 'object',
  required: ['issuer', 'jwks_uri'],
  properties: { issuer: { type: 'string' }, jwks_uri: { type: 'string' } }
} as const

export interface PublishedKeys {
  path: string
  /** The JWK Set, serialized (a Buffer: sent as it is, encoded once, with no charset added to its media type). */
  jwks: Buffer
  /** The discovery document, serialized, when `discovery` is on. */
  discovery: Buffer | undefined
}

/** The public JWK of a prepared asymmetric key, with what a verifier needs to pick and pin it. */
function publicJwk (key: PreparedKey): JsonWebKey {
  const pem = typeof key.secret === 'object' && !Buffer.isBuffer(key.secret) ? key.secret.public : undefined
  if (pem === undefined) throw new Error('unreachable: an asymmetric key without its public half')
  // Only the public members: a KeyObject of type 'public' exports no private ones.
  const jwk = createPublicKey(pem).export({ format: 'jwk' })
  return { ...jwk, kid: key.kid, alg: key.algorithm, use: 'sig' }
}

/** `token.issuer` as an OpenID Connect issuer: an https URL (http only on loopback), no query or fragment. */
function checkIssuerUrl (issuer: string | undefined): string {
  if (issuer === undefined) throw new MultiauthOptionError('token.publishKeys.discovery needs token.issuer (the discovery document names it)')
  let url: URL
  try {
    url = new URL(issuer)
  } catch {
    throw new MultiauthOptionError('token.publishKeys.discovery: token.issuer must be an absolute URL')
  }
  // The rule `token.issuers` applies to the issuers it trusts, so a verifier using this document accepts it.
  if (!isSafeUrl(url) || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new MultiauthOptionError('token.publishKeys.discovery: token.issuer must be an https URL (http only on 127.0.0.1, localhost or [::1]) without query, fragment or credentials')
  }
  return issuer
}

/** Checks `token.publishKeys` and builds the bodies; `undefined` when publishing is off. */
export function preparePublishedKeys (raw: unknown, keys: readonly PreparedKey[], inKeysArray: boolean, issuer: string | undefined): PublishedKeys | undefined {
  if (raw === undefined || raw === false) return undefined
  const options = raw === true ? {} : checkObject(raw, 'token.publishKeys') as PublishKeysOptions
  checkKeys(options as Record<string, unknown>, ['path', 'discovery'], 'token.publishKeys')
  const path = options.path ?? DEFAULT_PATH
  checkString(path, 'token.publishKeys.path')
  if (!path.startsWith('/') || /[?#\s]/.test(path)) throw new MultiauthOptionError('token.publishKeys.path must start with "/" and hold no query, fragment or space')
  checkBoolean(options.discovery, 'token.publishKeys.discovery')
  if (options.discovery === true && path === DISCOVERY_PATH) throw new MultiauthOptionError(`token.publishKeys.path cannot be ${DISCOVERY_PATH} (the discovery document is served there)`)

  if (keys.length === 0) throw new MultiauthOptionError('token.publishKeys needs an asymmetric key (RSA, EC or Ed25519) in token.keys')
  keys.forEach((key, i) => {
    const where = inKeysArray ? `token.keys[${i}]` : 'token'
    // A shared secret verifies AND signs: publishing it would let anyone mint our tokens.
    if (key.algorithm === 'HS256') throw new MultiauthOptionError(`token.publishKeys: ${where} is an HS256 secret, which is never published; sign with an RSA, EC or Ed25519 key pair`)
    // Verifiers (jose, get-jwks, jwks-rsa) pick the key by the token's kid; our tokens carry it only when the key has one.
    if (key.kid === undefined) throw new MultiauthOptionError(`token.publishKeys: ${where} needs a kid (give the key as token.keys: [{ kid, publicKey, privateKey }])`)
  })

  const jwks = Buffer.from(JSON.stringify({ keys: keys.map(publicJwk) }))
  let discovery: Buffer | undefined
  if (options.discovery === true) {
    const url = checkIssuerUrl(issuer)
    // Discovery URLs are the issuer plus a path (OpenID Connect Discovery 1.0 §4): this service answers at the issuer's root.
    discovery = Buffer.from(JSON.stringify({ issuer: url, jwks_uri: `${url.replace(/\/+$/, '')}${path}` }))
  }
  return { path, jwks, discovery }
}

/**
 * Adds the routes: no guard of ours, no OpenAPI security, errors through the application's handler.
 * (A guard the application adds to every route with `addHook` on the root reaches them, as it
 * reaches the token routes: docs/tokens.md says to scope such a hook.)
 */
export function publishKeysRoutes (app: FastifyInstance, published: PublishedKeys): void {
  const { path, jwks, discovery } = published
  const errorHandler = pluginRouteErrorHandler(app)
  app.get(path, {
    errorHandler,
    // An explicit empty requirement: a document-wide `security` of the application does not apply here.
    schema: {
      summary: 'Public keys that verify this service\'s access tokens (JWK Set, RFC 7517)',
      security: [],
      response: { 200: { description: 'JWK Set', content: { 'application/jwk-set+json': { schema: JWKS_SCHEMA } } } }
    }
  }, (_request, reply) => {
    reply.header('cache-control', CACHE_CONTROL).type('application/jwk-set+json').send(jwks)
  })
  if (discovery !== undefined) {
    app.get(DISCOVERY_PATH, {
      errorHandler,
      schema: {
        summary: 'Discovery document: issuer and jwks_uri (OpenID Connect Discovery 1.0 / RFC 8414)',
        security: [],
        response: { 200: DISCOVERY_SCHEMA }
      }
    }, (_request, reply) => {
      reply.header('cache-control', CACHE_CONTROL).type('application/json').send(discovery)
    })
  }
}
