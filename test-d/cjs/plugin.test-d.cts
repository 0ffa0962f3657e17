// Type tests of dist/index.d.cts as a CommonJS application sees it.
import Fastify = require('fastify')
import multiauth = require('fastify-multiauth')
import multiauthDefault from 'fastify-multiauth'
import { fastifyMultiauth, MemoryStore, UnauthorizedError } from 'fastify-multiauth'
import type { AuthInfo, MultiauthOptions } from 'fastify-multiauth'

declare module 'fastify-multiauth' {
  interface MultiauthUser { id: string }
}

const app = Fastify()
// The module itself is the plugin, as with Fastify's own plugins (before 0.2 this was TS2769:
// no overload of register matched the module object).
app.register(multiauth, { basic: { verify: (username) => ({ id: username }) } })
// .default, .fastifyMultiauth and the named exports are still there.
app.register(multiauth.default, { basic: { verify: (username) => ({ id: username }) } })
app.register(multiauth.fastifyMultiauth, { apiKey: { verify: (key) => (key ? { id: key } : null) } })
app.register(multiauthDefault, { apiKey: { verify: (key) => (key ? { id: key } : null) } })
app.register(fastifyMultiauth, { apiKey: { verify: (key) => (key ? { id: key } : null) } })
const sameStore: MemoryStore = new multiauth.MemoryStore()
const error: InstanceType<typeof UnauthorizedError> = new multiauth.UnauthorizedError('x')
const options: MultiauthOptions = { store: sameStore }
app.register(multiauth, options)
const hash: Promise<string> = multiauth.hashPassword('x')
app.get('/', { onRequest: app.authGuard(['basic', 'apiKey']) }, async (request) => {
  const id: string | undefined = request.user?.id
  const auth: AuthInfo | null = request.auth
  return { id, via: auth?.method, hash, error }
})

// @ts-expect-error unknown method name
app.authGuard(['basic', 'cookie'])
// @ts-expect-error verify must return the user type
app.register(multiauth, { basic: { verify: () => ({ name: 'x' }) } })
// @ts-expect-error verify must return the user type (through .default too)
app.register(multiauth.default, { basic: { verify: () => ({ name: 'x' }) } })
// @ts-expect-error not an option
app.register(multiauth, { basics: {} })
