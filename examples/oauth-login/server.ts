// "Sign in with …" through OAuth2 / OpenID Connect, ending in a cookie session.
// Run: npm run example -- oauth-login   (prints the flow as curl lines with a cookie jar)
// By default a local OpenID Connect provider (the `oidc-provider` package) is started on
// 127.0.0.1, so the whole flow runs offline: any user name signs in.
// Google:  OAUTH_PROVIDER=google OAUTH_CLIENT_ID=… OAUTH_CLIENT_SECRET=… npx tsx examples/oauth-login/server.ts
// GitHub:  OAUTH_PROVIDER=github OAUTH_CLIENT_ID=… OAUTH_CLIENT_SECRET=… npx tsx examples/oauth-login/server.ts
// (register http://localhost:3000/auth/<provider>/callback as the redirect URI at the provider).
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import type { FastifyError, FastifyInstance } from 'fastify'
import multiauth from '../../src/index.js'
import type { MultiauthUser, OAuth2ProviderOptions } from '../../src/index.js'
import { startOidcProvider } from '../../test/helpers/oidc-provider.js'
import { freePort } from '../../test/helpers/redis.js'
import { curlFlow } from './flow.js'

// Your user type: what the `findUser` callbacks return and `request.auth.user` is (declaration
// merging; in your application: `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser { id: string, name: string, email?: string }
}
export interface ExampleServer { app: FastifyInstance, url: string, provider: string, /** The local provider's issuer, when it runs. */ issuer?: string, close: () => Promise<void> }

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const page = (title: string, body: string): string =>
  `<!doctype html><meta charset="utf-8"><title>${escapeHtml(title)}</title><h1>${escapeHtml(title)}</h1>${body}`

export async function start (options: { port?: number } = {}): Promise<ExampleServer> {
  const port = options.port ?? Number(process.env.PORT ?? 3000)
  const baseUrl = `http://localhost:${port === 0 ? await freePort() : port}`
  const cleanup: Array<() => Promise<void>> = []
  const preset = process.env.OAUTH_PROVIDER ?? 'local'
  let provider: OAuth2ProviderOptions
  let issuer: string | undefined
  if (preset === 'google' || preset === 'github') {
    provider = { preset, clientId: process.env.OAUTH_CLIENT_ID ?? '', clientSecret: process.env.OAUTH_CLIENT_SECRET ?? '' }
  } else {
    const local = await startOidcProvider({ redirectUris: [`${baseUrl}/auth/local/callback`] })
    cleanup.push(local.close)
    issuer = local.issuer
    provider = { issuer: local.issuer, clientId: local.clientId, clientSecret: local.clientSecret }
  }
  const name = preset === 'google' || preset === 'github' ? preset : 'local'

  // Your users, keyed by (provider, subject): link on the provider's stable id, not on email.
  const users = new Map<string, MultiauthUser>()

  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
  // The logout button is an HTML form (use @fastify/formbody in a real app).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 },
    (_request, body, done) => { done(null, Object.fromEntries(new URLSearchParams(body as string))) })
  await app.register(multiauth, {
    session: {
      secret: process.env.SESSION_SECRET ?? 'change-me-to-a-random-secret-of-32+-chars',
      secure: false, // local HTTP only
      findUser: (id) => users.get(id) ?? null
    },
    oauth2: {
      baseUrl,
      providers: { [name]: provider },
      redirect: '/private',
      // The provider's user, found or created: linked on (provider, subject).
      findUser (profile) {
        const id = `${profile.provider}:${profile.id}`
        const user = users.get(id) ?? { id, name: profile.name ?? profile.id, email: profile.email }
        users.set(id, user)
        return user
      }
    }
  })

  app.setErrorHandler(async (error: FastifyError, _request, reply) => {
    const status = error.statusCode ?? 500
    return await reply.code(status).type('text/html').send(page(status === 401 ? 'Not signed in' : `Error ${status}`,
      `<p id="error">${escapeHtml(status >= 500 ? 'Server error' : error.message)}</p><p><a href="/">Home</a></p>`))
  })

  app.get('/', async (_request, reply) => await reply.type('text/html').send(page('OAuth login example',
    `<p><a id="sign-in" href="/auth/${name}">Sign in with ${escapeHtml(name)}</a></p>`)))

  // Only a session begun by a provider login; `request.auth` then says which provider.
  const loggedIn = app.authGuard(['oauth2'])
  app.get('/private', { onRequest: loggedIn }, async (request, reply) => {
    const auth = request.auth
    const provider = auth?.method === 'oauth2' ? auth.provider : '-'
    return await reply.type('text/html').send(page('Private page', `<p id="greeting">Hello, ${escapeHtml(auth?.user.name ?? '')} (via ${auth?.method}, provider ${escapeHtml(provider)})</p>
<form method="post" action="/logout"><button type="submit" id="logout">Log out</button></form>`))
  })
  app.post('/logout', { onRequest: loggedIn }, async (request, reply) => {
    await app.authSessions.logout(request)
    return await reply.redirect('/', 303)
  })

  await app.listen({ port: Number(new URL(baseUrl).port), host: 'localhost' })
  return {
    app,
    url: baseUrl,
    provider: name,
    issuer,
    close: async () => {
      await app.close()
      for (const fn of cleanup) await fn()
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const server = await start()
  console.log(`OAuth login example on ${server.url}/ — provider: ${server.provider}${server.issuer === undefined ? '' : ` at ${server.issuer} (any user name signs in)`}. Open it in a browser,`)
  console.log('or paste these lines, in order, into a shell (they keep cookies in a file named jar):')
  for (const line of curlFlow(server.url, server.provider)) console.log(line)
  console.log()
  const stop = (): void => { server.close().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
