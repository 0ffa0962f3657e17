import Fastify from 'fastify'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import multiauth from '../../src/index.js'
import type { MultiauthOptions, SessionOptions } from '../../src/index.js'

export const SESSION_SECRET = 'a-session-secret-of-at-least-32-characters'

export interface SessionTestUser { id: string, name: string }

/**
 * An app with a password-less test login (`POST /login {id}`), `POST /logout`, a guarded
 * `GET /me` and `POST /me` (unsafe, for CSRF), and `POST /cart` that writes to an
 * anonymous session before login (to test fixation).
 */
export async function sessionApp (
  users: Map<string, SessionTestUser>,
  options: { session?: Partial<SessionOptions>, plugin?: Partial<MultiauthOptions>, server?: FastifyServerOptions } = {}
): Promise<FastifyInstance> {
  const app = Fastify(options.server)
  await app.register(multiauth, {
    ...options.plugin,
    session: { secret: SESSION_SECRET, secure: false, findUser: (id) => users.get(id) ?? null, ...options.session }
  })
  app.post<{ Body: { id: string } }>('/login', async (request, reply) => {
    const user = users.get(request.body.id)
    if (user === undefined) return await reply.code(401).send({ error: 'unauthorized' })
    await app.authSessions.login(request, user)
    return { ok: true }
  })
  app.post('/logout', async (request) => {
    await app.authSessions.logout(request)
    return { ok: true }
  })
  app.post('/cart', async (request) => {
    request.session.set('cart' as never, ['book'] as never)
    return { ok: true }
  })
  const guard = app.authGuard(['session'])
  app.get('/me', { onRequest: guard }, async (request) => ({ user: request.auth?.user ?? null, method: request.auth?.method }))
  app.post('/me', { onRequest: guard }, async (request) => ({ user: request.auth?.user ?? null, method: request.auth?.method }))
  return app
}

/** `name=value` of a Set-Cookie for `name` in an inject response, or undefined. */
export function cookieFrom (response: { cookies: Array<{ name: string, value: string }> }, name: string): string | undefined {
  const cookie = response.cookies.find((c) => c.name === name && c.value !== '')
  return cookie === undefined ? undefined : `${name}=${cookie.value}`
}
