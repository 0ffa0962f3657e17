// Type tests of dist/index.d.cts as a CommonJS application sees it.
import Fastify = require('fastify')
import multiauth = require('fastify-multiauth')
import type { AuthInfo } from 'fastify-multiauth'

declare module 'fastify-multiauth' {
  interface MultiauthUser { id: string }
}

const app = Fastify()
app.register(multiauth.default, { basic: { verify: (username) => ({ id: username }) } })
app.register(multiauth.fastifyMultiauth, { apiKey: { verify: (key) => (key ? { id: key } : null) } })
const store = new multiauth.MemoryStore()
const hash: Promise<string> = multiauth.hashPassword('x')
app.get('/', { onRequest: app.authGuard(['basic', 'apiKey']) }, async (request) => {
  const id: string | undefined = request.user?.id
  const auth: AuthInfo | null = request.auth
  return { id, via: auth?.method, store, hash }
})

// @ts-expect-error unknown method name
app.authGuard(['basic', 'cookie'])
// @ts-expect-error verify must return the user type
app.register(multiauth.default, { basic: { verify: () => ({ name: 'x' }) } })
