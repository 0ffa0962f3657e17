// Bearer tokens with fastify-multiauth, two ways to get one:
//   a login route: POST /login with JSON credentials → access token; GET /protected needs Bearer
//     (the flask-jwt-extended way);
//   the token method's own route: POST /api/v1/tokens/ with Basic → { token, expiration: 3600 }; a
//     token cannot mint a token; Basic "<token>:" (empty password) is a token (the Flask-HTTPAuth way).
// Run: npm run example -- tokens   (PORT and JWT_SECRET are read from the environment). It prints
// the whole flow as curl lines: log in, call, refresh, reuse of a spent refresh token (refused), log out.
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import multiauth, { hashPassword, verifyPassword } from '../../src/index.js'
import type { BasicCredential, MultiauthUser } from '../../src/index.js'

// Your user type: what the callbacks return and `request.auth.user` is (declaration merging;
// in your application: `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser { id: string, email: string }
}

// Your database, by email. Passwords are stored as argon2id hashes, never in clear, and
// beside the user, not in it: the user is what the routes see.
const accounts = new Map<string, BasicCredential>([
  ['alice@example.com', { user: { id: '1', email: 'alice@example.com' }, passwordHash: await hashPassword('wonderland') }]
])
const byId = (id: string): MultiauthUser | undefined => [...accounts.values()].find((a) => a.user.id === id)?.user

// A real deployment sets JWT_SECRET (at least 32 bytes) so tokens survive restarts and work on every instance.
const secret = process.env.JWT_SECRET || randomBytes(32).toString('base64url')

const app = Fastify({ logger: { level: 'warn' } })

// One JSON error shape: { error: 'unauthorized', message: 'Invalid credentials' }.
app.setErrorHandler((err: { statusCode?: number, message: string, oauthError?: string }, _request, reply) => {
  const status = err.statusCode ?? 500
  // The token endpoint (/tokens/refresh, /tokens/revoke) keeps the RFC 6749 error body OAuth clients read.
  if (err.oauthError !== undefined) return reply.code(status).send({ error: err.oauthError, error_description: err.message })
  const error = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status < 500 ? 'bad request' : 'internal error'
  return reply.code(status).send({ error, message: status < 500 ? err.message : 'Internal server error' })
})

await app.register(multiauth, {
  realm: 'example',
  basic: {
    // The plugin checks the argon2id hash (and equalises timing for unknown emails).
    findCredential: async (email) => accounts.get(email) ?? null,
    allowToken: true
  },
  token: {
    secret,
    claims: (user) => ({ sub: user.id }),
    findUser: (claims) => byId(claims.sub) ?? null, // a deleted user → 401
    expiresIn: '1h', // `expiration: 3600` from POST /api/v1/tokens/
    refresh: true,
    revocation: true,
    routes: { prefix: '/api/v1/tokens' }
  }
})

// The login route: POST /login { username, password } → { access_token }
app.post('/login', {
  schema: {
    body: {
      type: 'object',
      required: ['username', 'password'],
      properties: { username: { type: 'string', maxLength: 256 }, password: { type: 'string', maxLength: 1024 } }
    }
  }
}, async (request, reply) => {
  const { username, password } = request.body as { username: string, password: string }
  const account = accounts.get(username)
  if (account === undefined || !(await verifyPassword(account.passwordHash, password))) {
    return await reply.code(401).send({ error: 'unauthorized', message: 'Invalid credentials' })
  }
  const { accessToken, refreshToken } = await app.authTokens.issue(account.user, { request })
  return { access_token: accessToken, refresh_token: refreshToken }
})

// GET /protected with Authorization: Bearer <token>  (Basic "<token>:" works too)
app.get('/protected', { onRequest: app.authGuard(['token', 'basic']) }, async (request) => ({
  logged_in_as: request.auth?.user.email,
  via: request.auth?.method
}))

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
const json = 'content-type: application/json'
const field = (name: string): string => `sed -E 's/.*"${name}":"([^"]+)".*/\\1/'`
console.log(`fastify-multiauth tokens example listening on ${address} (user alice@example.com, password wonderland)`)
console.log('The whole flow with curl: paste these lines, in order, into a POSIX shell (sh, bash, zsh):')
console.log('# 1. Log in (JSON credentials): an access token and a refresh token')
console.log(`TOKENS=$(curl -s -X POST ${address}/login -H '${json}' -d '{"username":"alice@example.com","password":"wonderland"}'); echo "$TOKENS"`)
console.log(`ACCESS=$(echo "$TOKENS" | ${field('access_token')}); REFRESH=$(echo "$TOKENS" | ${field('refresh_token')})`)
console.log('# 2. Call a protected route with the access token')
console.log(`curl -s ${address}/protected -H "Authorization: Bearer $ACCESS" -w ' HTTP %{http_code}\\n'`)
console.log('# 3. Refresh: a new pair of tokens; the refresh token just used is now spent')
console.log(`curl -s -X POST ${address}/api/v1/tokens/refresh -H '${json}' -d "{\\"refresh_token\\":\\"$REFRESH\\"}" -w ' HTTP %{http_code}\\n'`)
console.log('# 4. Present the spent refresh token again: refused (400 invalid_grant), and every refresh token of this login is revoked')
console.log(`curl -s -X POST ${address}/api/v1/tokens/refresh -H '${json}' -d "{\\"refresh_token\\":\\"$REFRESH\\"}" -w ' HTTP %{http_code}\\n'`)
console.log('# 5. Log out: revoke the access token (200); the next call with it is refused (401)')
console.log(`curl -s -X POST ${address}/api/v1/tokens/revoke -H "Authorization: Bearer $ACCESS" -w 'HTTP %{http_code}\\n'`)
console.log(`curl -s ${address}/protected -H "Authorization: Bearer $ACCESS" -w ' HTTP %{http_code}\\n'`)
console.log('# The token-as-password way to a token: Basic on POST /api/v1/tokens/ gives { token, expiration }')
console.log(`curl -s -u alice@example.com:wonderland -X POST ${address}/api/v1/tokens/ -w ' HTTP %{http_code}\\n'`)
console.log()
