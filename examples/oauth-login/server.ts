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
import multiauth, { logout } from '../../src/index.js'
import type { OAuth2ProviderOptions } from '../../src/index.js'
import { startOidcProvider } from '../../test/helpers/oidc-provider.js'
import { freePort } from '../../test/helpers/redis.js'

interface User { id: string, name: string, email?: string }
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
  const users = new Map<string, User>()

  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
  // The logout button is an HTML form (use @fastify/formbody in a real app).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 },
    (_request, body, done) => { done(null, Object.fromEntries(new URLSearchParams(body as string))) })
  await app.register(multiauth, {
    session: {
      secret: process.env.SESSION_SECRET ?? 'change-me-to-a-random-secret-of-32+-chars',
      secure: false, // local HTTP only
      lookup: (id) => users.get(id) ?? null
    },
    oauth2: {
      baseUrl,
      providers: { [name]: provider },
      redirect: '/private',
      onLogin (profile) {
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

  const loggedIn = app.authGuard(['session'])
  app.get('/private', { onRequest: loggedIn }, async (request, reply) => {
    const user = request.user as User
    const auth = request.auth as { method: string, provider?: string }
    return await reply.type('text/html').send(page('Private page', `<p id="greeting">Hello, ${escapeHtml(user.name)} (via ${auth.method}, provider ${escapeHtml(auth.provider ?? '-')})</p>
<form method="post" action="/logout"><button type="submit" id="logout">Log out</button></form>`))
  })
  app.post('/logout', { onRequest: loggedIn }, async (request, reply) => {
    await logout(request)
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

/**
 * The flow as curl lines with a cookie jar (a file named `jar`). The provider's sign-in page is a
 * browser's step; the local test provider's is a one-field form, so curl can fill it in too.
 */
export function curlFlow (url: string, provider: string): string[] {
  const status = "-o /dev/null -w 'HTTP %{http_code}\\n'"
  const signIn = provider === 'local'
    ? [
        '# 2. Start the login: the app redirects to the provider (state, PKCE and nonce in the URL; -L follows to its sign-in page)',
        `LOGIN_PAGE=$(curl -s -c jar -b jar -L -o /dev/null -w '%{url_effective}' ${url}/auth/local); echo "$LOGIN_PAGE"`,
        '# 3. The provider\'s sign-in form (a browser\'s step with a real provider; any user name here), back to the app\'s callback and the private page',
        `curl -s -c jar -b jar -L -d login=carol "$LOGIN_PAGE" -w '\\nHTTP %{http_code}\\n'`
      ]
    : [
        `# 2. Sign in with a browser at ${url}/ : the ${provider} sign-in page is a browser's step, curl cannot pass it.`,
        `#    Then copy the "sid" cookie for ${new URL(url).hostname} from the browser (developer tools, Application/Storage, Cookies) into the jar:`,
        `printf '${new URL(url).hostname}\\tFALSE\\t/\\tFALSE\\t0\\tsid\\t%s\\n' 'PASTE-THE-SID-COOKIE-VALUE' > jar`,
        '# 3. The private page, with that session',
        `curl -s -c jar -b jar ${url}/private -w '\\nHTTP %{http_code}\\n'`
      ]
  return [
    '# 1. Not signed in: the private page answers 401',
    `curl -s -c jar -b jar ${url}/private ${status}`,
    ...signIn,
    '# 4. Log out: a POST needs an Origin header naming this site (the CSRF check refuses it without one: 403)',
    `curl -s -b jar -X POST ${url}/logout -H 'Origin: ${url}' -o /dev/null -w 'HTTP %{http_code} -> %{redirect_url}\\n'`,
    '# 5. The session is gone on the server, not only from the jar (logout ran without -c, so the jar still has the old cookie): 401',
    `curl -s -b jar ${url}/private ${status}`
  ]
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
