// An API that accepts the access tokens of an identity provider (a "resource server",
// RFC 9068): it holds no key and mints no token; it trusts the provider's issuer, fetches the
// provider's public keys (JWKS) through its discovery document, and checks each token's
// signature, issuer, audience, expiry and scopes.
// Run: npm run example -- resource-server   (prints the flow as curl lines)
// A local OpenID provider (the `oidc-provider` package, on 127.0.0.1) stands in for Auth0,
// Keycloak, Entra ID…: it issues JWT access tokens for this API (its resource indicator) to a
// client_credentials client. With a real provider, put its issuer and your API's identifier in
// `token.issuers` (docs/tokens.md has the settings per provider).
import Fastify from 'fastify'
import multiauth from '../../src/index.js'
import { startResourceProvider } from '../../test/helpers/oidc-resource-provider.js'

// Your user type (declaration merging; in your application: `declare module 'fastify-multiauth'`).
// A client_credentials token names a client, not a person: its `sub` is the client id.
declare module '../../src/index.js' {
  interface MultiauthUser { id: string }
}

const provider = await startResourceProvider()

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
await app.register(multiauth, {
  token: {
    // No keys of our own: tokens of this issuer, for this audience (the API's identifier), and nothing else.
    issuers: [{ issuer: provider.issuer, audience: provider.audience }],
    // Where claims become your user: a lookup by `sub` in your database, or the claims themselves for a stateless API.
    findUser: (claims) => ({ id: claims.sub })
  }
})

const orders = [{ id: 1, item: 'tea' }]
app.get('/orders', { onRequest: app.authGuard({ methods: ['token'], scopes: ['read'] }) }, async (request) => ({
  orders,
  client: request.auth?.user.id,
  scopes: request.auth?.scopes
}))
app.post('/orders', { onRequest: app.authGuard({ methods: ['token'], scopes: ['write'] }) }, async (_request, reply) => {
  orders.push({ id: orders.length + 1, item: 'coffee' })
  return await reply.code(201).send({ created: orders.length })
})

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
const bearer = '-H "Authorization: Bearer $TOKEN"'
const status = "-w ' HTTP %{http_code}\\n'"
console.log(`Resource server example: the API on ${address}, trusting the OpenID provider at ${provider.issuer}`)
console.log('Paste these lines, in order, into a POSIX shell (sh, bash, zsh):')
console.log('# 1. A token from the provider: client credentials (RFC 6749 §4.4) for this API (resource indicator, RFC 8707), scope read')
console.log(`TOKEN=$(curl -s -u ${provider.clientId}:${provider.clientSecret} -d grant_type=client_credentials -d resource=${provider.audience} -d scope=read ${provider.issuer}/token | sed -E 's/.*"access_token":"([^"]+)".*/\\1/'); echo "$TOKEN" | cut -c1-24`)
console.log('# 2. Call the API with it: 200')
console.log(`curl -s ${address}/orders ${bearer} ${status}`)
console.log('# 3. Writing needs the write scope, which this token lacks: 403')
console.log(`curl -s -X POST ${address}/orders ${bearer} ${status}`)
console.log('# 4. No token: 401')
console.log(`curl -s ${address}/orders ${status}`)
console.log()

const stop = (): void => {
  app.close().then(provider.close).then(() => process.exit(0), () => process.exit(1))
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
