import type { FastifyBaseLogger } from 'fastify'
import type * as Jose from 'jose'
import { IssuerUnavailableError } from '../../core/errors.js'

// The keys of a trusted issuer (`token.issuers`): found by discovery when no `jwksUri` is given,
// fetched, cached and refetched by jose's remote key set, with three things jose leaves to us:
// a bound on the response size, the last good key set while the provider is unreachable, and a
// cooldown after a failed fetch (so an outage costs one request per cooldown, not one per token).

/** Largest discovery document or key set read, in bytes; a larger answer is a failed fetch. */
export const MAX_RESPONSE_BYTES = 256 * 1024
/** The fetch timeout when `callbackTimeout` is 0 (disabled): a fetch is never unbounded. */
const DEFAULT_FETCH_TIMEOUT = 5000

/**
 * Half of `callbackTimeout`: a fetch that hangs must fail while the guard still waits, so the
 * same request can fall back to the last good key set (or get our 503), not the guard's timeout.
 */
function fetchTimeout (callbackTimeoutMs: number): number {
  return callbackTimeoutMs > 0 ? Math.max(1, Math.floor(callbackTimeoutMs / 2)) : DEFAULT_FETCH_TIMEOUT
}

/** A fetch of the provider that failed: network, timeout, status, size, not JSON, not a key set. */
class FetchFailure extends Error {}

export interface RemoteKeysOptions {
  issuer: string
  jwksUri: string | undefined
  timeoutMs: number
  cooldownMs: number
  cacheMaxAgeMs: number
  /** The application's logger, once `setup` ran (debug level: URLs and failures, never a token). */
  log: () => FastifyBaseLogger | undefined
}

export type KeyLookup = Jose.JWTVerifyGetKey

/** `https:`, or `http:` on a loopback host (a provider in a test or on the same machine). */
export function isSafeUrl (url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname))
}

/** GETs `url` and parses its JSON body, reading at most MAX_RESPONSE_BYTES; any failure is a FetchFailure. */
async function fetchJson (url: string, signal: AbortSignal | undefined, headers: HeadersInit | undefined): Promise<unknown> {
  let response: Response
  try {
    response = await fetch(url, { method: 'GET', redirect: 'manual', signal, headers })
  } catch (err) {
    throw new FetchFailure(`GET ${url} failed: ${(err as Error).message}`, { cause: err })
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => {})
    throw new FetchFailure(`GET ${url} answered ${response.status}`)
  }
  const declared = Number(response.headers.get('content-length') ?? 0)
  if (declared > MAX_RESPONSE_BYTES) {
    await response.body?.cancel().catch(() => {})
    throw new FetchFailure(`GET ${url}: body of ${declared} bytes exceeds ${MAX_RESPONSE_BYTES}`)
  }
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for await (const chunk of response.body ?? []) {
      size += (chunk as Uint8Array).byteLength
      if (size > MAX_RESPONSE_BYTES) {
        await response.body?.cancel().catch(() => {})
        throw new FetchFailure(`GET ${url}: body exceeds ${MAX_RESPONSE_BYTES} bytes`)
      }
      chunks.push(chunk as Uint8Array)
    }
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (err) {
    throw err instanceof FetchFailure ? err : new FetchFailure(`GET ${url}: ${(err as Error).message}`, { cause: err })
  }
}

function isKeySet (value: unknown): value is { keys: unknown[] } {
  return typeof value === 'object' && value !== null && Array.isArray((value as { keys?: unknown }).keys) &&
    (value as { keys: unknown[] }).keys.every((key) => typeof key === 'object' && key !== null && !Array.isArray(key))
}


/** The discovery document URLs of `issuer`: OpenID Connect first, then RFC 8414 §3.1 (path inserted after the host). */
function discoveryUrls (issuer: string): string[] {
  const url = new URL(issuer)
  const path = url.pathname.replace(/\/$/, '')
  return [
    `${url.origin}${path}/.well-known/openid-configuration`,
    `${url.origin}/.well-known/oauth-authorization-server${path}`
  ]
}

/**
 * The key lookup jose's `jwtVerify` calls for one trusted issuer. It throws jose's own errors for
 * a token that names no published key (a 401), and IssuerUnavailableError (503) when the keys
 * it needs cannot be had: discovery failed, or the provider is unreachable and the last good
 * key set lacks the token's key.
 */
export function createRemoteKeys (jose: typeof Jose, options: RemoteKeysOptions): KeyLookup {
  const { issuer, cooldownMs, cacheMaxAgeMs } = options
  const timeoutMs = fetchTimeout(options.timeoutMs)
  /** jose writes every fetched key set here (`jwksCache`): the last good one, for an outage. */
  const lastGood: { uat?: number, jwks?: Jose.JSONWebKeySet } = {}
  let lastGoodSet: { uat: number, lookup: KeyLookup } | undefined
  let remote: ReturnType<typeof Jose.createRemoteJWKSet> | undefined
  let discovering: Promise<ReturnType<typeof Jose.createRemoteJWKSet>> | undefined
  /** When the last fetch (discovery or key set) failed; until the cooldown ends, no new attempt. */
  let failedAt = Number.NEGATIVE_INFINITY
  let lastFailure: unknown

  /** jose's `customFetch`: the same request, with the body bounded and checked to be a key set. */
  async function boundedKeySetFetch (url: string, init: { signal?: AbortSignal, headers?: HeadersInit }): Promise<Response> {
    options.log()?.debug({ issuer, url }, 'multiauth: fetching the issuer\'s key set')
    const body = await fetchJson(url, init.signal, init.headers)
    if (!isKeySet(body)) throw new FetchFailure(`GET ${url}: not a JSON Web Key Set`)
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } })
  }

  function remoteSet (jwksUri: string): ReturnType<typeof Jose.createRemoteJWKSet> {
    return jose.createRemoteJWKSet(new URL(jwksUri), {
      timeoutDuration: timeoutMs,
      cooldownDuration: cooldownMs,
      cacheMaxAge: cacheMaxAgeMs,
      [jose.jwksCache]: lastGood as Jose.ExportedJWKSCache,
      [jose.customFetch]: boundedKeySetFetch as Jose.FetchImplementation
    })
  }

  async function discover (): Promise<ReturnType<typeof Jose.createRemoteJWKSet>> {
    const failures: string[] = []
    // One deadline for both locations: discovery and the first key set fetch fit in callbackTimeout.
    const signal = AbortSignal.timeout(timeoutMs)
    for (const url of discoveryUrls(issuer)) {
      let document: unknown
      try {
        options.log()?.debug({ issuer, url }, 'multiauth: fetching the issuer\'s discovery document')
        document = await fetchJson(url, signal, { accept: 'application/json' })
      } catch (err) {
        failures.push((err as Error).message)
        continue
      }
      const { issuer: documentIssuer, jwks_uri: jwksUri } = (document ?? {}) as Record<string, unknown>
      // RFC 8414 §3.3 / OIDC Discovery §4.3: the document must name the very issuer it was fetched for.
      if (documentIssuer !== issuer) throw new FetchFailure(`${url}: issuer ${JSON.stringify(documentIssuer)} is not ${issuer}`)
      if (typeof jwksUri !== 'string' || !URL.canParse(jwksUri) || !isSafeUrl(new URL(jwksUri))) {
        throw new FetchFailure(`${url}: jwks_uri must be an https URL (http only on a loopback host)`)
      }
      options.log()?.debug({ issuer, jwksUri }, 'multiauth: the issuer\'s key set location found by discovery')
      return remoteSet(jwksUri)
    }
    throw new FetchFailure(`discovery of ${issuer} failed: ${failures.join('; ')}`)
  }

  /** The remote key set, after discovery when needed (once; concurrent first uses share it). */
  async function keySet (): Promise<ReturnType<typeof Jose.createRemoteJWKSet>> {
    if (remote !== undefined) return remote
    if (options.jwksUri !== undefined) {
      remote = remoteSet(options.jwksUri)
      return remote
    }
    discovering ??= discover().finally(() => { discovering = undefined })
    remote = await discovering
    return remote
  }

  function unavailable (cause: unknown): Error {
    return new IssuerUnavailableError({ cause })
  }

  /** While the provider is unreachable: the key from the last good set, else a 503. */
  async function fromLastGood (header: Jose.CompactJWSHeaderParameters, token: Jose.FlattenedJWSInput): Promise<Jose.CryptoKey> {
    const { uat, jwks } = lastGood
    if (uat === undefined || jwks === undefined) throw unavailable(lastFailure)
    if (lastGoodSet?.uat !== uat) lastGoodSet = { uat, lookup: jose.createLocalJWKSet(jwks) }
    try {
      return await lastGoodSet.lookup(header, token) as Jose.CryptoKey
    } catch (err) {
      // A key we never saw may have been published during the outage: we cannot tell, so 503, never a 401 or a pass.
      if (err instanceof jose.errors.JWKSNoMatchingKey) throw unavailable(lastFailure)
      throw err
    }
  }

  return async function remoteKey (header, token) {
    if (Date.now() - failedAt < cooldownMs) return await fromLastGood(header, token)
    try {
      const set = await keySet()
      return await set(header, token)
    } catch (err) {
      if (!(err instanceof FetchFailure) && !(err instanceof jose.errors.JWKSTimeout)) throw err
      failedAt = Date.now()
      lastFailure = err
      options.log()?.debug({ issuer, err: { message: (err as Error).message } }, 'multiauth: the issuer\'s keys could not be fetched; using the last good key set until the cooldown ends')
      return await fromLastGood(header, token)
    }
  }
}
