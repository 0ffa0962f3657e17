import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { randomBytes } from 'node:crypto'
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose'
import type { JWK, JWTPayload, JWSHeaderParameters } from 'jose'
import Provider from 'oidc-provider'
import { freePort } from './redis.js'

/**
 * A REAL OpenID Connect provider (the `oidc-provider` package) on 127.0.0.1 that issues JWT
 * access tokens for a resource (its resource-indicators feature) to a client_credentials
 * client: the provider an API behind `token.issuers` trusts. The JWKS endpoint can be taken
 * down and the signing key rotated (a new Provider on the same issuer, keys [new, old]).
 */
export interface ResourceProvider {
  issuer: string
  /** The resource (API) tokens are minted for: their `aud`. */
  audience: string
  /** Another resource of the same provider (a token for it must not pass). */
  otherAudience: string
  clientId: string
  clientSecret: string
  /** A client_credentials access token for `resource` (default `audience`). */
  accessToken: (options?: { resource?: string, scope?: string }) => Promise<string>
  /** Requests the JWKS endpoint received (answered or refused). */
  jwksRequests: () => number
  /** Requests the discovery endpoint received. */
  discoveryRequests: () => number
  /** While true, the JWKS endpoint answers 503. */
  jwksDown: (down: boolean) => void
  /** A new signing key: published first, the old one still published after it; new tokens use it. */
  rotate: () => Promise<void>
  /** The kid the provider signs with now. */
  currentKid: () => string
  /** Signs `claims` with the provider's current private key (a token the provider could have issued). */
  sign: (claims: JWTPayload, header?: Partial<JWSHeaderParameters>) => Promise<string>
  close: () => Promise<void>
}

interface SigningKey { kid: string, privateJwk: JWK }

async function newKey (): Promise<SigningKey> {
  const kid = `rs-${randomBytes(6).toString('hex')}`
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  return { kid, privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' } }
}

export async function startResourceProvider (): Promise<ResourceProvider> {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const audience = 'https://api.example.test'
  const otherAudience = 'https://other-api.example.test'
  const clientId = 'resource-client'
  const clientSecret = randomBytes(24).toString('base64url')
  let keys: SigningKey[] = [await newKey()]
  let jwksRequests = 0
  let discoveryRequests = 0
  let down = false
  const cookieKeys = [randomBytes(32).toString('base64url')]

  function build (): Provider {
    const provider = new Provider(issuer, {
      clients: [{
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic'
      }],
      jwks: { keys: keys.map((k) => k.privateJwk) },
      cookies: { keys: cookieKeys },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => audience,
          useGrantedResource: () => true,
          async getResourceServerInfo (_ctx: unknown, resource: string) {
            if (resource !== audience && resource !== otherAudience) throw new (Provider as unknown as { errors: { InvalidTarget: new () => Error } }).errors.InvalidTarget()
            return { scope: 'read write', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: 300, jwt: { sign: { alg: 'RS256' } } }
          }
        }
      }
    })
    provider.use(async (ctx, next) => {
      if (ctx.path === '/jwks') {
        jwksRequests++
        if (down) {
          (ctx as unknown as { status: number }).status = 503
          ctx.body = 'down'
          return
        }
      }
      if (ctx.path === '/.well-known/openid-configuration') discoveryRequests++
      await next()
    })
    return provider
  }

  let callback = build().callback()
  const server: Server = createServer((req, res) => { void callback(req, res) })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))

  return {
    issuer,
    audience,
    otherAudience,
    clientId,
    clientSecret,
    async accessToken (options = {}) {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded'
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: options.resource ?? audience, scope: options.scope ?? 'read' }).toString()
      })
      const body = await response.json() as { access_token?: string }
      if (response.status !== 200 || typeof body.access_token !== 'string') throw new Error(`token endpoint answered ${response.status}: ${JSON.stringify(body)}`)
      return body.access_token
    },
    jwksRequests: () => jwksRequests,
    discoveryRequests: () => discoveryRequests,
    jwksDown: (on) => { down = on },
    async rotate () {
      keys = [await newKey(), ...keys]
      callback = build().callback()
    },
    currentKid: () => (keys[0] as SigningKey).kid,
    async sign (claims, header = {}) {
      const key = keys[0] as SigningKey
      return await new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: key.kid, ...header } as JWSHeaderParameters & { alg: string })
        .sign(await importJWK(key.privateJwk, 'RS256'))
    },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
