// A whole users API with fastify-multiauth (a port of Flask-HTTPAuth's API lesson,
// "Flask User Authentication for APIs"):
//   - users with email + argon2id password hash in a SQLite file, created and seeded on first start;
//   - Basic with an email and password, or a token as the user name with an empty password
//     (basic.allowToken; Flask-HTTPAuth's verify_password(email_or_token, password));
//   - POST /api/v1/tokens/ → { token, expiration: 3600 }; a token cannot mint a token;
//   - ONE onRequest guard for every route under /api/v1 (the Flask `api` blueprint's
//     before_request + login_required), and a preHandler that refuses unconfirmed accounts with 403;
//   - one JSON error shape: { error: 'unauthorized', message: 'Invalid credentials' };
//   - the OpenAPI document of it all at GET /openapi.json (@fastify/swagger).
//
// Run: npx tsx examples/sqlite-users-api/server.ts
// Environment: PORT (default 3000), DB_FILE (default users.sqlite beside this file), JWT_SECRET
// (at least 32 bytes; without it tokens are signed with a random key and die with the process).
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import type { FastifyError, FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import multiauth, { hashPassword, multiauthOpenApi, verifyPassword } from '../../src/index.js'
import { openUsers } from './db.js'
import type { User } from './db.js'

// `request.auth.user` is the API's User (declaration merging; in your application:
// `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser extends User {}
}

const dbFile = process.env.DB_FILE ?? fileURLToPath(new URL('./users.sqlite', import.meta.url))
const { users, created } = await openUsers(dbFile)
const secret = process.env.JWT_SECRET || randomBytes(32).toString('base64url')
const REALM = 'users-api'

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })

// Before the routes: @fastify/swagger collects them as they are declared. multiauthOpenApi adds
// the transforms that document the plugin's security schemes and each guarded route.
await app.register(swagger, multiauthOpenApi(app, {
  openapi: {
    info: { title: 'Users API', version: '1.0.0', description: 'Users in SQLite, behind Basic (email and password, or a token) and Bearer tokens' }
  }
}))

// Checked against for unknown emails: an unknown email costs the same argon2 run as a wrong password.
const timingHash = await hashPassword('timing equaliser')

await app.register(multiauth, {
  realm: REALM,
  basic: {
    // The email's user when the password matches, nothing otherwise (Flask-HTTPAuth's verify_password).
    verify: async (email, password) => {
      const found = users.byEmail(email)
      const matches = await verifyPassword(found?.passwordHash ?? timingHash, password)
      return found !== undefined && matches ? found.user : null
    },
    // "if password == '': g.current_user = User.verify_auth_token(email_or_token)"
    allowToken: true
  },
  token: {
    secret,
    expiresIn: '1h', // `expiration: 3600` in the token route's answer
    claims: (user) => ({ sub: String(user.id) }),
    // The token's user, or nothing when it was deleted meanwhile (a 401).
    findUser: (claims) => users.byId(Number(claims.sub)) ?? null
  }
})

// One JSON shape for every error. 401s keep the WWW-Authenticate
// challenge the plugin set on the reply.
app.setErrorHandler((err: FastifyError, request, reply) => {
  const status = err.statusCode ?? 500
  if (status >= 500) request.log.error({ err }, 'request failed')
  if (status === 401) return reply.code(401).send({ error: 'unauthorized', message: 'Invalid credentials' })
  if (status === 403) return reply.code(403).send({ error: 'forbidden', message: err.message })
  if (status < 500) return reply.code(status).send({ error: 'bad request', message: err.message })
  return reply.code(status).send({ error: 'internal error', message: 'Internal server error' })
})

const forbidden = (message: string): Error => Object.assign(new Error(message), { statusCode: 403 })
const invalidCredentials = (): Error => Object.assign(new Error('Invalid credentials'), { statusCode: 401 })

const userSchema = {
  type: 'object',
  required: ['id', 'email', 'confirmed'],
  properties: { id: { type: 'integer' }, email: { type: 'string' }, confirmed: { type: 'boolean' } }
} as const
const errorSchema = {
  type: 'object',
  required: ['error', 'message'],
  properties: { error: { type: 'string' }, message: { type: 'string' } }
} as const

/** The `api` blueprint: everything under /api/v1. */
async function api (v1: FastifyInstance): Promise<void> {
  // @api.before_request + @auth.login_required: ONE guard for every route of this plugin.
  // Email + password, a token as the Basic user name, or Authorization: Bearer.
  v1.addHook('onRequest', v1.authGuard(['basic', 'token']))
  // A hook added with addHook is not part of the route options the OpenAPI document is built
  // from: every route of the plugin declares it instead (a route's own `security` wins).
  v1.addHook('onRoute', (route) => { route.schema = { security: [{ basic: [] }, { token: [] }], ...route.schema } })
  // ... and the confirmed-account check, once the user is known.
  v1.addHook('preHandler', async (request) => {
    if (request.auth?.user.confirmed !== true) throw forbidden('Unconfirmed account')
  })

  v1.post('/tokens/', {
    schema: {
      summary: 'Get a token',
      // Stated here because the guard admits tokens, and this route then refuses them.
      security: [{ basic: [] }],
      response: {
        200: {
          type: 'object',
          required: ['token', 'expiration'],
          properties: { token: { type: 'string' }, expiration: { type: 'integer', description: 'seconds' } }
        },
        401: errorSchema,
        403: errorSchema
      }
    }
  }, async (request, reply) => {
    // "if g.current_user.is_anonymous or g.token_used": a token cannot mint a token.
    if (request.auth?.method !== 'basic') {
      reply.header('www-authenticate', `Basic realm="${REALM}", charset="UTF-8"`)
      throw invalidCredentials()
    }
    const { accessToken, expiresIn } = await v1.authTokens.issue(request.auth.user, { request })
    return { token: accessToken, expiration: expiresIn }
  })

  v1.get('/users/me', {
    schema: { summary: 'The authenticated user', response: { 200: userSchema, 401: errorSchema, 403: errorSchema } }
  }, async (request) => request.auth?.user)

  v1.get<{ Params: { id: number } }>('/users/:id', {
    schema: {
      summary: 'A user by id',
      params: { type: 'object', required: ['id'], properties: { id: { type: 'integer', minimum: 1 } } },
      response: { 200: userSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema }
    }
  }, async (request, reply) => {
    const user = users.byId(request.params.id)
    if (user === undefined) return await reply.code(404).send({ error: 'not found', message: 'No such user' })
    return user
  })
}
await app.register(api, { prefix: '/api/v1' })

// The OpenAPI document, with the security schemes and per-route requirements the plugin added.
app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

app.addHook('onClose', async () => { users.close() })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`${created ? 'created and seeded' : 'using'} ${dbFile} (alice@example.com / wonderland, confirmed; bob@example.com / builder, unconfirmed)`)
console.log(`Users API on ${address}; OpenAPI document at ${address}/openapi.json. Try it with curl (paste the lines into a shell):`)
console.log(`TOKEN=$(curl -s -u alice@example.com:wonderland -X POST ${address}/api/v1/tokens/ | sed -E 's/.*"token":"([^"]+)".*/\\1/'); echo "$TOKEN"`)
console.log('# the token as the Basic user name with an empty password; a Bearer header works too')
console.log(`curl -s -u "$TOKEN:" ${address}/api/v1/users/me -w ' HTTP %{http_code}\\n'`)
console.log(`curl -s -H "Authorization: Bearer $TOKEN" ${address}/api/v1/users/me -w ' HTTP %{http_code}\\n'`)
console.log('# bob has not confirmed his account: 403')
console.log(`curl -s -u bob@example.com:builder ${address}/api/v1/users/me -w ' HTTP %{http_code}\\n'`)
console.log()
