// Cookie sessions with a login form, a protected page and logout, stored in Redis.
// Run: npm run example -- sessions   (REDIS_URL=redis://… to use your Redis; otherwise a
// throwaway local redis-server is started, or memory if there is none). It prints the flow as
// curl lines with a cookie jar, the way a browser would do it.
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import type { FastifyError, FastifyInstance } from 'fastify'
import multiauth, { hashPassword, MemoryStore, RedisStore, verifyPassword } from '../../src/index.js'
import type { MultiauthStore } from '../../src/index.js'
import { redisAvailable, startRedis } from '../../test/helpers/redis.js'

// Your user type: what `session.findUser` returns and `request.auth.user` is (declaration
// merging; in your application: `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser { id: string, name: string }
}

export interface ExampleServer { app: FastifyInstance, url: string, close: () => Promise<void> }

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const page = (title: string, body: string): string =>
  `<!doctype html><meta charset="utf-8"><title>${escapeHtml(title)}</title><h1>${escapeHtml(title)}</h1>${body}`
const loginForm = (error = ''): string => page('Sign in', `${error === '' ? '' : `<p id="error">${escapeHtml(error)}</p>`}
<form method="post" action="/login">
  <label>User name <input name="username" id="username" autocomplete="username"></label>
  <label>Password <input name="password" id="password" type="password" autocomplete="current-password"></label>
  <button type="submit" id="sign-in">Sign in</button>
</form><p>Try alice / wonderland.</p>`)

export async function start (options: { port?: number, redisUrl?: string } = {}): Promise<ExampleServer> {
  // Demo users; a real application has a database.
  const users = new Map<string, { id: string, name: string, passwordHash: string }>([
    ['alice', { id: 'alice', name: 'Alice', passwordHash: await hashPassword('wonderland') }]
  ])
  // Checked against for unknown user names: they cost the same argon2 run as a wrong password.
  const timingHash = await hashPassword('timing equaliser')
  const cleanup: Array<() => Promise<void>> = []
  let store: MultiauthStore
  const redisUrl = options.redisUrl ?? (process.env.REDIS_URL || undefined)
  if (redisUrl !== undefined) {
    store = new RedisStore({ connection: redisUrl })
  } else if (redisAvailable) {
    const redis = await startRedis()
    cleanup.push(redis.stop)
    store = new RedisStore({ connection: redis.url })
  } else {
    console.warn('redis-server not found: sessions are kept in memory (one process only)')
    store = new MemoryStore()
  }
  cleanup.unshift(async () => { await store.close?.() })

  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
  // HTML forms post application/x-www-form-urlencoded (use @fastify/formbody in a real app).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 },
    (_request, body, done) => { done(null, Object.fromEntries(new URLSearchParams(body as string))) })

  await app.register(multiauth, {
    store,
    session: {
      secret: process.env.SESSION_SECRET ?? 'change-me-to-a-random-secret-of-32+-chars',
      // Local HTTP only: in production leave `secure` at its default (true) and serve HTTPS.
      secure: false,
      findUser: (id) => {
        const user = users.get(id)
        return user === undefined ? null : { id: user.id, name: user.name }
      }
    }
  })

  // A browser should see a page, not JSON, when it is not logged in.
  app.setErrorHandler(async (error: FastifyError, _request, reply) => {
    const status = error.statusCode ?? 500
    if (status === 401) return await reply.code(401).type('text/html').send(loginForm('Please sign in.'))
    return await reply.code(status).type('text/html').send(page(`Error ${status}`, `<p>${escapeHtml(status >= 500 ? 'Server error' : error.message)}</p>`))
  })

  app.get('/', async (_request, reply) => await reply.type('text/html').send(loginForm()))

  app.post<{ Body: { username?: string, password?: string } }>('/login', async (request, reply) => {
    const { username = '', password = '' } = request.body ?? {}
    const user = users.get(username)
    const ok = await verifyPassword(user?.passwordHash ?? timingHash, password)
    if (user === undefined || !ok) return await reply.code(401).type('text/html').send(loginForm('Wrong user name or password.'))
    await app.authSessions.login(request, { id: user.id, name: user.name })
    return await reply.redirect('/private', 303)
  })

  const loggedIn = app.authGuard(['session'])
  app.get('/private', { onRequest: loggedIn }, async (request, reply) => {
    const auth = request.auth
    return await reply.type('text/html').send(page('Private page', `<p id="greeting">Hello, ${escapeHtml(auth?.user.name ?? '')} (via ${auth?.method})</p>
<form method="post" action="/logout"><button type="submit" id="logout">Log out</button></form>`))
  })

  app.post('/logout', { onRequest: loggedIn }, async (request, reply) => {
    await app.authSessions.logout(request)
    return await reply.redirect('/', 303)
  })

  await app.listen({ port: options.port ?? Number(process.env.PORT ?? 3000), host: 'localhost' })
  const { port } = app.server.address() as { port: number }
  return {
    app,
    url: `http://localhost:${port}`,
    close: async () => {
      await app.close()
      for (const fn of cleanup) await fn()
    }
  }
}

/** The flow a browser goes through, as curl lines with a cookie jar (a file named `jar`). */
export function curlFlow (url: string): string[] {
  const status = "-o /dev/null -w 'HTTP %{http_code}\\n'"
  return [
    '# 1. Sign in: the form posts user name and password; the session cookie lands in the cookie jar',
    `curl -s -c jar -b jar -X POST ${url}/login -d 'username=alice&password=wonderland' -o /dev/null -w 'HTTP %{http_code} -> %{redirect_url}\\n'`,
    '# 2. The protected page, with the session cookie',
    `curl -s -c jar -b jar ${url}/private -w '\\nHTTP %{http_code}\\n'`,
    '# 3. Log out: a POST needs an Origin header naming this site (the CSRF check refuses it without one: 403)',
    `curl -s -b jar -X POST ${url}/logout ${status}`,
    `curl -s -b jar -X POST ${url}/logout -H 'Origin: ${url}' -o /dev/null -w 'HTTP %{http_code} -> %{redirect_url}\\n'`,
    '# 4. The session is gone on the server, not only from the jar (logout ran without -c, so the jar still has the old cookie): 401',
    `curl -s -b jar ${url}/private ${status}`
  ]
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const server = await start()
  console.log(`Sessions example on ${server.url}/ — open it in a browser and sign in as alice / wonderland.`)
  console.log('Or with curl: paste these lines, in order, into a shell (they keep cookies in a file named jar):')
  for (const line of curlFlow(server.url)) console.log(line)
  console.log()
  const stop = (): void => { server.close().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
