import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { randomBytes } from 'node:crypto'
import { decodeJwt, exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose'
import type { JWK, JWTPayload } from 'jose'
import Provider from 'oidc-provider'
import { freePort } from './redis.js'

/**
 * A REAL OpenID Connect provider (the `oidc-provider` package) on 127.0.0.1, for tests
 * and the oauth-login example. Its login page is a plain form (any user name logs in,
 * as that account); consent is granted automatically for the one client.
 */
export interface TestProvider {
  issuer: string
  clientId: string
  clientSecret: string
  /** Errors the token endpoint answered (e.g. `invalid_grant` for a replayed code), newest last. */
  grantErrors: string[]
  /** Requests the token endpoint received (each code exchange attempt). */
  tokenRequests: () => number
  /** While true, jwks_uri publishes another key under the same `kid`: id_tokens no longer verify against it. */
  serveForeignJwks: (on: boolean) => void
  /**
   * While set, jwks_uri answers this instead of the key set (a status, a body: a broken provider),
   * or never answers (`'hang'`); the token endpoint still works. `undefined` serves the key set again.
   */
  breakJwks: (answer: JwksAnswer | undefined) => void
  /**
   * While set, the token endpoint's id_token is re-issued with the claims `edit` returns, signed
   * with the provider's own key (so only the claims differ from a genuine one). `undefined` stops it.
   */
  editIdToken: (edit: ((claims: JWTPayload) => JWTPayload) | undefined) => void
  close: () => Promise<void>
}

export type JwksAnswer = { status: number, contentType?: string, body: string } | 'hang'

export interface TestProviderOptions {
  /** The client's exact redirect URIs (e.g. `http://localhost:3000/auth/local/callback`). */
  redirectUris: string[]
  port?: number
  clientId?: string
  clientSecret?: string
}

async function signingKey (kid: string): Promise<{ privateJwk: JWK, publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' }
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }
  return { privateJwk, publicJwk }
}

function escapeHtml (s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

async function readForm (req: IncomingMessage): Promise<URLSearchParams> {
  let body = ''
  for await (const chunk of req) {
    body += String(chunk)
    if (body.length > 10_000) throw new Error('form too large')
  }
  return new URLSearchParams(body)
}

export async function startOidcProvider (options: TestProviderOptions): Promise<TestProvider> {
  const port = options.port ?? await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const clientId = options.clientId ?? 'multiauth-test'
  const clientSecret = options.clientSecret ?? randomBytes(24).toString('base64url')
  const kid = 'test-key-1'
  const real = await signingKey(kid)
  const foreign = await signingKey(kid)
  let foreignJwks = false
  let brokenJwks: JwksAnswer | undefined
  /** Releases the jwks requests held by `'hang'` (when the answer changes). */
  let releaseHung: () => void = () => {}
  let idTokenEdit: ((claims: JWTPayload) => JWTPayload) | undefined
  const realKey = await importJWK(real.privateJwk, 'RS256')
  const grantErrors: string[] = []
  let tokenRequests = 0

  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: options.redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic'
    }],
    jwks: { keys: [real.privateJwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    async findAccount (_ctx: unknown, sub: string) {
      return {
        accountId: sub,
        async claims () {
          return { sub, email: `${sub}@example.test`, email_verified: true, name: sub.charAt(0).toUpperCase() + sub.slice(1) }
        }
      }
    },
    // No consent screen: the one client gets the scopes it asks for (oidc-provider's "skip consent" recipe).
    async loadExistingGrant (ctx: { oidc: any }) {
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session?.grantIdFor(ctx.oidc.client?.clientId as string)
      if (grantId !== undefined) return await ctx.oidc.provider.Grant.find(grantId)
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client?.clientId, accountId: ctx.oidc.session?.accountId })
      grant.addOIDCScope('openid email profile')
      await grant.save()
      return grant
    }
  })
  provider.on('grant.error', (_ctx, err) => { grantErrors.push((err as { error?: string }).error ?? err.message) })
  // Serve the foreign public key at jwks_uri when asked; the provider still signs with the real one.
  provider.use(async (ctx, next) => {
    if (ctx.path === '/token') tokenRequests++
    if (brokenJwks !== undefined && ctx.path === '/jwks') {
      if (brokenJwks === 'hang') {
        await new Promise<void>((resolve) => { const before = releaseHung; releaseHung = () => { before(); resolve() } })
        ctx.status = 503
        return
      }
      ctx.status = brokenJwks.status
      ctx.type = brokenJwks.contentType ?? 'application/jwk-set+json'
      ctx.body = brokenJwks.body
      return
    }
    if (foreignJwks && ctx.path === '/jwks') {
      ctx.type = 'application/jwk-set+json'
      ctx.body = { keys: [foreign.publicJwk] }
      return
    }
    await next()
    const body = ctx.body as { id_token?: unknown } | undefined
    if (idTokenEdit !== undefined && ctx.path === '/token' && typeof body?.id_token === 'string') {
      body.id_token = await new SignJWT(idTokenEdit(decodeJwt(body.id_token)))
        .setProtectedHeader({ alg: 'RS256', kid })
        .sign(realKey)
    }
  })
  const callback = provider.callback()

  async function interaction (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await provider.interactionDetails(req, res)
    if (req.method === 'POST') {
      const form = await readForm(req)
      const login = form.get('login') ?? ''
      if (!/^[a-z][a-z0-9]{0,30}$/.test(login)) {
        res.statusCode = 400
        res.end('bad login')
        return
      }
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false })
      return
    }
    res.setHeader('content-type', 'text/html; charset=utf-8')
    res.end(`<!doctype html><title>Test provider login</title><h1>Sign in to the test provider</h1>
<form method="post" action="/interaction/${escapeHtml(details.uid)}">
<label>User name <input name="login" id="provider-login" autocomplete="off"></label>
<button type="submit" id="provider-submit">Sign in</button></form>`)
  }

  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/interaction/') === true) {
      interaction(req, res).catch((err: Error) => {
        res.statusCode = 500
        res.end(err.message)
      })
      return
    }
    void callback(req, res)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))

  return {
    issuer,
    clientId,
    clientSecret,
    grantErrors,
    tokenRequests: () => tokenRequests,
    serveForeignJwks: (on) => { foreignJwks = on },
    breakJwks: (answer) => {
      brokenJwks = answer
      const release = releaseHung
      releaseHung = () => {}
      release()
    },
    editIdToken: (edit) => { idTokenEdit = edit },
    close: async () => {
      releaseHung()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** A cookie jar for one simulated browser: cookies by name (localhost ports share cookies in browsers too). */
export class CookieJar {
  readonly cookies = new Map<string, string>()

  header (): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }

  store (response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';')
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1] ?? '') < Date.now()))
      if (expired || value === '') this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  async fetch (url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers)
    if (this.cookies.size > 0) headers.set('cookie', this.header())
    const response = await fetch(url, { ...init, headers, redirect: 'manual' })
    this.store(response)
    return response
  }
}

export interface FlowOptions {
  /** Changes the authorization URL before the browser follows it (e.g. another nonce). */
  editAuthorizeUrl?: (url: URL) => void
  /** Changes the callback URL before the browser follows it (e.g. another state). */
  editCallbackUrl?: (url: URL) => void
  login?: string
}

export interface FlowResult {
  /** The app's answer to the callback. */
  callback: Response
  /** The callback URL as followed (code and state in its query). */
  callbackUrl: URL
}

/**
 * Drives the authorization code flow the way a browser does, without one: the app's
 * start route, the provider's login form, its redirects, then the app's callback.
 * Every step is a real HTTP request; the loop is bounded.
 */
export async function runCodeFlow (jar: CookieJar, startUrl: string, providerIssuer: string, options: FlowOptions = {}): Promise<FlowResult> {
  const start = await jar.fetch(startUrl)
  if (start.status !== 302) throw new Error(`start route answered ${start.status}: ${await start.text()}`)
  const authorize = new URL(start.headers.get('location') as string)
  options.editAuthorizeUrl?.(authorize)
  let url = authorize.href
  for (let step = 0; step < 10; step++) {
    if (!url.startsWith(providerIssuer)) {
      const callbackUrl = new URL(url)
      options.editCallbackUrl?.(callbackUrl)
      return { callback: await jar.fetch(callbackUrl.href), callbackUrl }
    }
    let response = await jar.fetch(url)
    if (response.status === 200 && new URL(url).pathname.startsWith('/interaction/')) {
      await response.text()
      response = await jar.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ login: options.login ?? 'alice' }).toString()
      })
    }
    const location = response.headers.get('location')
    if (location === null) throw new Error(`provider answered ${response.status} at ${url}: ${(await response.text()).slice(0, 300)}`)
    url = new URL(location, url).href
  }
  throw new Error('the code flow did not reach the callback in 10 redirects')
}
