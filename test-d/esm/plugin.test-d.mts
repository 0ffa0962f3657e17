// Type tests of dist/index.d.ts as an ES module application sees it, with `request.user` typed
// by the opt-in `fastify-multiauth/request-user` (this application uses neither @fastify/jwt nor
// @fastify/passport, which declare `request.user` themselves: test-d/jwt, test-d/passport).
import Fastify from 'fastify'
import type { FastifyRequest } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import multiauth, {
  CredentialsInvalidError, CredentialsMissingError, CrossSiteError, fastifyMultiauth, generateApiKey, hashPassword,
  IssuerUnavailableError, MemoryStore, MultiauthOptionError, RedisStore, rotateApiKey
} from 'fastify-multiauth'
import type {
  ApiKeyRecord, AuthInfo, BasicCredential, Duration, IssuedTokens, MethodName, MultiauthOptions, MultiauthUser, RateLimitOptions, RedisStoreOptions,
  TrustedIssuer, TrustedIssuerAlgorithm
} from 'fastify-multiauth'
import 'fastify-multiauth/request-user'
import { OAUTH2_REFUSAL_REASONS, readApiKeyUsage, subscribeMultiauth } from 'fastify-multiauth'
import type { ApiKeyUsage, ApiKeyUsageTotals, OAuth2RefusalReason, RefusalReason, RevokeOptions, SessionLoginEvent, TokenRevokedEvent } from 'fastify-multiauth'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

declare module 'fastify-multiauth' {
  interface MultiauthUser { id: string, roles: string[] }
}

const app = Fastify()
const alice = { id: 'alice', roles: ['admin'] }

// ---- positive cases ----
await app.register(multiauth, {
  realm: 'example',
  callbackTimeout: '10s',
  basic: { verify: async (username, password, request) => (username === 'alice' && password === 'x' && request.ip ? alice : null) },
  token: {
    secret: 'x'.repeat(32),
    findUser: async (claims) => (claims.sub === 'alice' ? alice : null),
    claims: (user) => ({ sub: user.id, scope: user.roles }),
    expiresIn: '15m',
    clockTolerance: 0,
    refresh: { expiresIn: '30 days' }
  },
  apiKey: { verify: (key) => (key === 'k' ? alice : undefined), header: 'x-api-key', query: 'api_key' },
  roles: (user) => user.roles,
  // Durations as @fastify/rate-limit writes them, on every budget.
  rateLimit: {
    perCredential: { max: 100, timeWindow: '1 minute' },
    failuresPerIp: { max: 20, timeWindow: '1 minute' },
    failuresPerUser: { max: 10, timeWindow: 900_000, normalizeUsername: (username) => username.toLowerCase() }
  }
})
const credential: BasicCredential = { user: alice, passwordHash: await hashPassword('x') }
await app.register(fastifyMultiauth, { basic: { findCredential: async () => credential, onRehash: async (user, newHash) => { void user.id; void newHash } } })
// An ApiKeyRecord without type arguments is a record of your MultiauthUser: findKey takes it as it is.
const records = new Map<string, ApiKeyRecord>([['id1', { user: alice, hash: 'ab'.repeat(32), scopes: ['read'], rateLimit: { max: 5, timeWindow: 60_000 } }]])
await app.register(multiauth, { apiKey: { findKey: (id) => records.get(id), prefix: 'sk' } })
await app.register(multiauth, { apiKey: { findKey: async (id): Promise<ApiKeyRecord | null> => records.get(id) ?? null } })
await app.register(multiauth, {
  session: { secret: 's'.repeat(32), findUser: (id) => (id === 'alice' ? alice : null), maxAge: '2h', absoluteTimeout: 86_400_000 },
  oauth2: { baseUrl: 'https://app.example', providers: { google: { preset: 'google', clientId: 'c', clientSecret: 's' } }, findUser: (profile) => ({ id: profile.id, roles: [] }), httpTimeout: '5s' }
})
// Synchronous and thenable answers are accepted.
const thenable: PromiseLike<typeof alice> = { then: (ok) => Promise.resolve(alice).then(ok) }
await app.register(multiauth, { basic: { verify: () => thenable } })
await app.register(multiauth, { store: new MemoryStore(), rateLimit: false })
// RedisStore on every topology: a Cluster of yours, seed nodes of a Cluster the store owns,
// Sentinel connection options, a standalone client or URL; waitForReplicas with a Duration.
const clusterStore = new RedisStore({ client: new Cluster([{ host: '127.0.0.1', port: 7000 }, { host: '127.0.0.1', port: 7001 }]) })
const ownedCluster = new RedisStore({ cluster: { nodes: [{ host: '127.0.0.1', port: 7000 }], options: { scaleReads: 'master' } } })
const sentinelStore = new RedisStore({
  connection: { sentinels: [{ host: '127.0.0.1', port: 26379 }, { host: '127.0.0.1', port: 26380 }], name: 'primary' },
  waitForReplicas: { replicas: 1, timeout: '500ms' },
  commandTimeout: '1s'
})
const standaloneStore = new RedisStore({ client: new Redis({ host: '127.0.0.1' }), waitForReplicas: { replicas: 1 } })
const urlStore = new RedisStore({ connection: 'redis://127.0.0.1:6379', prefix: 'app:', allowEviction: false })
const storeClient: Redis | Cluster = clusterStore.client
const waiting: { replicas: number, timeout: number } | undefined = sentinelStore.waitForReplicas
const storeOptions: RedisStoreOptions = { cluster: { nodes: ['127.0.0.1:7000', 7001] }, waitForReplicas: { replicas: 2, timeout: 250 } }
await app.register(multiauth, { store: clusterStore, token: { secret: 'x'.repeat(32), findUser: () => alice, revocation: true } })
await app.register(multiauth, { store: sentinelStore, session: { secret: 's'.repeat(32), findUser: () => alice } })
void ownedCluster; void standaloneStore; void urlStore; void storeClient; void waiting; void storeOptions
const window: Duration = '1 minute'
const limits: RateLimitOptions = { perCredential: { max: 60, timeWindow: window }, failuresPerIp: false }
void limits

app.get('/me', { onRequest: app.authGuard(['basic', 'token', 'apiKey']) }, async (request) => {
  // fastify-multiauth/request-user: request.user is the declared MultiauthUser, no cast.
  const isUserOrNull: Equal<typeof request.user, MultiauthUser | null> = true
  const auth = request.auth
  if (auth === null) return null
  const isUser: Equal<typeof auth.user, MultiauthUser> = true
  const roles: string[] = auth.user.roles
  const isMethod: Equal<typeof auth.method, MethodName> = true
  // The union narrows on `method`.
  switch (auth.method) {
    case 'token': { const c: Record<string, unknown> = auth.claims; return c }
    case 'oauth2': { const p: string = auth.provider; return p }
    case 'apiKey': { const k: string | undefined = auth.keyId; return k }
    case 'session': { const p: string | undefined = auth.provider; return p }
    case 'basic': {
      // @ts-expect-error Basic has no claims
      auth.claims
      return auth.user.id
    }
  }
  return [isUserOrNull, isUser, isMethod, roles]
})
app.get('/admin', { onRequest: app.authGuard({ methods: ['token'], roles: ['admin', ['ops', 'oncall']], scopes: ['read'], mode: 'all', optional: true }) }, async () => 'ok')
app.addHook('onRequest', app.verifyBasic)
app.post('/login', async (request) => {
  // Always present (failing closed when their method is not configured): no `?.`, no cast.
  const issued: IssuedTokens = await app.authTokens.issue(alice, { request, verifiedAt: Date.now() })
  const access: string = issued.accessToken
  const bearer: 'Bearer' = issued.tokenType
  const seconds: number = issued.expiresIn
  const refresh: string | undefined = issued.refreshToken
  const renewed: IssuedTokens | null = await app.authTokens.refresh(refresh ?? '', { request })
  await app.authSessions.login(request, alice)
  await app.authSessions.logout(request)
  const cleared: number = app.authCache.clear('alice')
  return { access, bearer, seconds, renewed, cleared }
})
const info: AuthInfo | null = null
const missing = new CredentialsMissingError()
const invalid = new CredentialsInvalidError()
const crossSite = new CrossSiteError()
const statusCodes: number[] = [missing.statusCode, invalid.statusCode, crossSite.statusCode]
const optionError = new MultiauthOptionError('basic.verify must be a function')
const optionCode: string = optionError.code
const key = generateApiKey({ prefix: 'sk', environment: 'live' })
const rotated = rotateApiKey({ id: key.id, prefix: key.prefix, environment: key.environment }, { grace: '24h' })
const graceEndsAt: number = rotated.previous.graceEndsAt
const opts: MultiauthOptions = { basic: { verify: () => null } }
void info; void statusCodes; void optionCode; void graceEndsAt; void opts

// ---- negative cases: each line must fail to compile ----
// @ts-expect-error unknown method name in the guard
app.authGuard(['password'])
// @ts-expect-error unknown method name in the guard's object form
app.authGuard({ methods: ['basic', 'jwt'] })
// @ts-expect-error mode is 'any' or 'all'
app.authGuard({ methods: ['basic'], mode: 'some' })
// @ts-expect-error roles are strings or lists of strings
app.authGuard({ methods: ['basic'], roles: [1] })
// @ts-expect-error the plugin needs options of the right shape: unknown key
await app.register(multiauth, { bsic: { verify: () => alice } })
// @ts-expect-error basic.verify takes (username, password, request): a fourth parameter is wrong
await app.register(multiauth, { basic: { verify: (u: string, p: string, r: FastifyRequest, extra: string) => alice } })
// @ts-expect-error basic.verify must return the user (or falsy), not `true`
await app.register(multiauth, { basic: { verify: async () => true } })
// @ts-expect-error basic.verify's username is a string
await app.register(multiauth, { basic: { verify: (username: number) => alice } })
// @ts-expect-error a user object missing fields of MultiauthUser
await app.register(multiauth, { apiKey: { verify: () => ({ id: 'x' }) } })
// @ts-expect-error an API-key record's user is a MultiauthUser too
const badRecord: ApiKeyRecord = { user: { id: 'x' }, hash: 'h' }
// @ts-expect-error token.findUser is required with token
await app.register(multiauth, { token: { secret: 'x'.repeat(32) } })
// @ts-expect-error roles must return role names
await app.register(multiauth, { roles: () => 42 })
// @ts-expect-error findCredential returns { user, passwordHash }
await app.register(multiauth, { basic: { findCredential: async () => ({ user: alice, hash: 'x' }) } })
// @ts-expect-error session.findUser receives the stored user id, a string
await app.register(multiauth, { session: { secret: 's'.repeat(32), findUser: (id: number) => alice } })
// @ts-expect-error oauth2.findUser must return a user
await app.register(multiauth, { oauth2: { baseUrl: 'https://a', providers: {}, findUser: () => 'alice' } })
// @ts-expect-error a duration is milliseconds or a string, not a boolean
await app.register(multiauth, { callbackTimeout: true })
// @ts-expect-error a budget's window is a Duration
await app.register(multiauth, { rateLimit: { perCredential: { max: 5, timeWindow: { minutes: 1 } } } })
// @ts-expect-error waitForReplicas.replicas is a number, not a string
void new RedisStore({ connection: 'redis://127.0.0.1:6379', waitForReplicas: { replicas: '1' } })
// @ts-expect-error waitForReplicas needs replicas
void new RedisStore({ connection: 'redis://127.0.0.1:6379', waitForReplicas: { timeout: '500ms' } })
// @ts-expect-error waitForReplicas has no other key (a typo of timeout)
void new RedisStore({ connection: 'redis://127.0.0.1:6379', waitForReplicas: { replicas: 1, timout: 500 } })
// @ts-expect-error cluster needs its seed nodes
void new RedisStore({ cluster: { options: { scaleReads: 'master' } } })
// @ts-expect-error client is an ioredis Redis or Cluster, not a URL (that is connection)
void new RedisStore({ client: 'redis://127.0.0.1:6379' })
// Exactly one of client, connection and cluster (the runtime refuses two as well).
// @ts-expect-error client and connection together
void new RedisStore({ client: new Redis(), connection: 'redis://127.0.0.1:6379' })
// @ts-expect-error none of them
void new RedisStore({ prefix: 'app:' })
app.get('/x', async (request) => {
  // @ts-expect-error request.user may be null before narrowing
  return request.user.id
})
app.get('/y', async (request) => {
  // @ts-expect-error request.auth is null until a method succeeded
  return request.auth.user.id
})

// ---- names removed in 1.0: each must fail to compile ----
// @ts-expect-error `timeout` is now `callbackTimeout`
await app.register(multiauth, { timeout: 5000 })
// @ts-expect-error token.lookup is now token.findUser
await app.register(multiauth, { token: { secret: 'x'.repeat(32), findUser: () => alice, lookup: () => alice } })
// @ts-expect-error session.lookup is now session.findUser
await app.register(multiauth, { session: { secret: 's'.repeat(32), findUser: () => alice, lookup: () => alice } })
// @ts-expect-error apiKey.lookup is now apiKey.findKey
await app.register(multiauth, { apiKey: { lookup: (id: string) => records.get(id) } })
// @ts-expect-error basic.findUser is now basic.findCredential
await app.register(multiauth, { basic: { findUser: async () => credential } })
// @ts-expect-error oauth2.onLogin is now oauth2.findUser
await app.register(multiauth, { oauth2: { baseUrl: 'https://a', providers: {}, findUser: () => alice, onLogin: () => alice } })
// @ts-expect-error rateLimit.max is now rateLimit.perCredential.max
await app.register(multiauth, { rateLimit: { max: 5 } })
// @ts-expect-error rateLimit.timeWindow is now rateLimit.perCredential.timeWindow
await app.register(multiauth, { rateLimit: { timeWindow: '1 minute' } })
// @ts-expect-error rotateApiKey's graceSeconds is now grace (a Duration)
rotateApiKey(key.key, { graceSeconds: 86_400 })
app.post('/old', async (request) => {
  // @ts-expect-error issue(user, request) is now issue(user, { request })
  await app.authTokens.issue(alice, request)
  // @ts-expect-error refresh(token, request) is now refresh(token, { request })
  await app.authTokens.refresh('r', request)
  // @ts-expect-error the access token is `accessToken` (the HTTP routes still answer `token`)
  return (await app.authTokens.issue(alice)).token
})
// token.issuers: providers' access tokens, with or without local keys.
const idp: TrustedIssuer = { issuer: 'https://tenant.eu.auth0.com/', audience: 'https://api.example.com', preset: 'auth0' }
await app.register(multiauth, {
  token: {
    findUser: (claims) => ({ id: claims.sub, roles: [] }),
    issuers: [idp, {
      issuer: 'https://sso.example.com/realms/main',
      jwksUri: 'https://sso.example.com/realms/main/protocol/openid-connect/certs',
      audience: ['api', 'api-v2'],
      algorithms: ['RS256', 'ES256'],
      typ: ['at+jwt', 'JWT'],
      scopes: ['scope', 'scp'],
      roles: 'realm_access.roles',
      clockTolerance: '10s',
      cooldown: '30s',
      cacheMaxAge: '10m'
    }]
  }
})
// @ts-expect-error audience is required for a trusted issuer
await app.register(multiauth, { token: { findUser: () => alice, issuers: [{ issuer: 'https://idp.example.com' }] } })
// @ts-expect-error never HS256 from a key set
await app.register(multiauth, { token: { findUser: () => alice, issuers: [{ issuer: 'https://idp.example.com', audience: 'a', algorithms: ['HS256'] }] } })
// @ts-expect-error an unknown preset
await app.register(multiauth, { token: { findUser: () => alice, issuers: [{ issuer: 'https://idp.example.com', audience: 'a', preset: 'ldap' }] } })
// @ts-expect-error scopes are read from scope, scp or permissions
await app.register(multiauth, { token: { findUser: () => alice, issuers: [{ issuer: 'https://idp.example.com', audience: 'a', scopes: ['roles'] }] } })
app.get('/issuer', { onRequest: app.authGuard(['token']) }, async (request) => {
  const auth = request.auth
  if (auth?.method !== 'token') return null
  const issuer: string | undefined = auth.issuer
  const alg: TrustedIssuerAlgorithm = 'EdDSA'
  return { issuer, alg, code: new IssuerUnavailableError().code }
})

// API-key usage, and the token/session/OAuth2 events' types.
const usageStore = new MemoryStore()
await app.register(multiauth, {
  store: usageStore,
  apiKey: {
    findKey: (id) => records.get(id),
    usage: { interval: '1m', retention: '90d', maxKeys: 1000, onUsed: async (usage: ApiKeyUsage) => { const when: Date = usage.lastUsedAt; void when } }
  }
})
await app.register(multiauth, { store: usageStore, apiKey: { findKey: (id) => records.get(id), usage: true } })
const totals: ApiKeyUsageTotals | null = await readApiKeyUsage(usageStore, key.id)
const lastUsed: Date | undefined = totals?.lastUsedAt
// @ts-expect-error interval is a Duration
await app.register(multiauth, { store: usageStore, apiKey: { findKey: (id) => records.get(id), usage: { interval: true } } })
// @ts-expect-error onUsed receives one usage object
await app.register(multiauth, { store: usageStore, apiKey: { findKey: (id) => records.get(id), usage: { onUsed: (keyId: string, count: number) => { void keyId; void count } } } })
const firstReason: OAuth2RefusalReason = OAUTH2_REFUSAL_REASONS[0]
const revokedKind: Equal<TokenRevokedEvent['kind'], 'access' | 'refresh'> = true
const loginUser: Equal<SessionLoginEvent['userId'], string> = true
app.post('/logout-everywhere', async (request) => {
  const options: RevokeOptions = { request }
  await app.authTokens.revokeAll('alice', options)
  await app.authTokens.revoke({ sub: 'alice', jti: 'j', exp: 1 }, { request })
  await app.authTokens.revokeRefreshToken('r')
})
void lastUsed; void firstReason; void revokedKind; void loginUser

// subscribeMultiauth: the listener's payload is the event's type; an unknown event does not compile.
const stopRefused: () => void = subscribeMultiauth('refused', (event) => {
  const reason: RefusalReason = event.reason
  // @ts-expect-error a refused event has no userId
  void event.userId
  void reason
})
subscribeMultiauth('token:refresh-reused', (event) => { const family: string = event.familyId; void family })
// @ts-expect-error no such event
subscribeMultiauth('logged-in', () => {})
stopRefused()

// @ts-expect-error UnauthorizedError is split into CredentialsMissingError and CredentialsInvalidError
import { UnauthorizedError } from 'fastify-multiauth'
// @ts-expect-error login and logout are app.authSessions.login and .logout
import { login, logout } from 'fastify-multiauth'
// @ts-expect-error clearVerifiedCredentials(app, username) is app.authCache.clear(username)
import { clearVerifiedCredentials } from 'fastify-multiauth'
// @ts-expect-error AuthFailure is internal
import type { AuthFailure } from 'fastify-multiauth'
// @ts-expect-error BasicUserRecord is now BasicCredential
import type { BasicUserRecord } from 'fastify-multiauth'
void badRecord; void UnauthorizedError; void login; void logout; void clearVerifiedCredentials
export type Removed = [AuthFailure, BasicUserRecord]
