import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import { Validator } from '@seriousme/openapi-schema-validator'
import multiauth from '../src/index.js'
import type { MultiauthOptions } from '../src/index.js'
import { startOidcProvider } from './helpers/oidc-provider.js'
import type { TestProvider } from './helpers/oidc-provider.js'

// The OpenAPI document @fastify/swagger generates for guarded routes, checked by value and
// by an OpenAPI validator (3.0 and 3.1 schemas).

type Doc = Record<string, any>
const ok = async (): Promise<{ ok: boolean }> => ({ ok: true })
const SECRET = 'x'.repeat(32)

async function validate (t: Test, doc: Doc): Promise<void> {
  const result = await new Validator().validate(doc)
  t.ok(result.valid, `the document validates as OpenAPI ${String(doc.openapi)}`)
  if (!result.valid) t.comment(JSON.stringify(result.errors, null, 2))
}

let provider: TestProvider
t.before(async () => { provider = await startOidcProvider({ redirectUris: ['http://localhost:3000/auth/local/callback'] }) })
t.teardown(async () => { await provider?.close() })

function allMethods (): MultiauthOptions {
  return {
    realm: 'docs',
    basic: { verify: (u, p) => u === 'a' && p === 'b' ? { id: 'a' } : null, allowToken: true },
    token: { secret: SECRET, lookup: (claims) => ({ id: claims.sub }), routes: true },
    apiKey: { verify: (key) => key === 'k' ? { id: 'k' } : null, header: 'X-Service-Key', query: 'key' },
    session: { secret: SECRET, secure: false, cookieName: 'app-sid', lookup: (id) => ({ id }) },
    oauth2: {
      baseUrl: 'http://localhost:3000',
      providers: {
        local: { issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret },
        github: { preset: 'github', clientId: 'gh-client', clientSecret: 'gh-secret' }
      },
      onLogin: (profile) => ({ id: profile.id })
    },
    roles: () => ['admin']
  }
}

/** The same application, documented as OpenAPI 3.0.3 (swagger's default) or 3.1.0. */
async function build (openapi: string | undefined, options: MultiauthOptions = allMethods()): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(swagger, {
    openapi: {
      ...(openapi === undefined ? {} : { openapi }),
      info: { title: 'test', version: '1.0.0' },
      // The application's own components stay, and a scheme of its own under one of our names wins.
      components: { securitySchemes: { partner: { type: 'http', scheme: 'bearer' } } }
    }
  })
  await app.register(multiauth, options)

  app.get('/public', ok)
  app.get('/any', { onRequest: app.authGuard(['basic', 'token', 'apiKey']) }, ok)
  app.get('/all', { onRequest: app.authGuard({ methods: ['basic', 'apiKey'], mode: 'all' }) }, ok)
  app.get('/scoped', { onRequest: app.authGuard({ methods: ['token', 'oauth2'], scopes: ['orders:read'] }) }, ok)
  app.get('/optional', { onRequest: app.authGuard({ methods: ['session'], optional: true }) }, ok)
  app.get('/roles', { onRequest: [app.authGuard({ methods: ['token'], roles: ['admin'] })] }, ok)
  app.get('/decorator', { onRequest: app.verifySession }, ok)
  app.get('/stacked', { onRequest: app.authGuard(['basic', 'token']), preHandler: app.authGuard(['apiKey']) }, ok)
  app.get('/own', { onRequest: app.authGuard(['basic']), schema: { security: [{ partner: [] }] } }, ok)
  // Naming one of our schemes, which the application's swagger options do not hold.
  app.get('/own-ours', { onRequest: app.authGuard(['basic', 'token']), schema: { security: [{ basic: [] }] } }, ok)
  // Seed 2's blueprint: one guard for a whole prefix, added with addHook in an encapsulated plugin.
  await app.register(async (api) => {
    api.addHook('onRequest', api.authGuard(['basic', 'token']))
    api.get('/users', ok)
    await api.register(async (nested) => { nested.get('/nested', ok) })
  }, { prefix: '/api/v1' })
  await app.ready()
  return app
}

function operation (doc: Doc, path: string, method = 'get'): Doc {
  return doc.paths[path][method]
}

t.test('OpenAPI 3.0: schemes and requirements per route', async (t) => {
  const app = await build(undefined)
  t.teardown(() => app.close())
  const doc = app.swagger() as Doc
  t.equal(doc.openapi, '3.0.3')
  await validate(t, doc)

  const schemes = doc.components.securitySchemes
  t.same(schemes.basic, { type: 'http', scheme: 'basic', description: 'HTTP Basic; an access token as the user name with an empty password also works' })
  t.same(schemes.token, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
  t.same(schemes.apiKey, { type: 'apiKey', in: 'header', name: 'X-Service-Key' })
  t.same(schemes.apiKeyQuery, { type: 'apiKey', in: 'query', name: 'key' })
  t.same(schemes.session, { type: 'apiKey', in: 'cookie', name: 'app-sid' })
  t.match(schemes.oauth2_local, { type: 'openIdConnect', openIdConnectUrl: `${provider.issuer}/.well-known/openid-configuration` })
  t.match(schemes.oauth2_github, {
    type: 'oauth2',
    flows: {
      authorizationCode: {
        authorizationUrl: 'https://github.com/login/oauth/authorize',
        tokenUrl: 'https://github.com/login/oauth/access_token',
        scopes: { 'read:user': 'read:user', 'user:email': 'user:email' }
      }
    }
  })
  t.same(schemes.partner, { type: 'http', scheme: 'bearer' }, 'the application\'s own scheme is kept')

  t.notOk('security' in operation(doc, '/public'), 'an unguarded route has no requirement')
  t.same(operation(doc, '/any').security, [{ basic: [] }, { token: [] }, { apiKey: [] }, { apiKeyQuery: [] }], 'any-of: one requirement per scheme')
  t.same(operation(doc, '/all').security, [{ basic: [], apiKey: [] }, { basic: [], apiKeyQuery: [] }], 'mode all: every method in one requirement')
  t.same(operation(doc, '/scoped').security, [{ token: [] }, { oauth2_local: ['orders:read'] }, { oauth2_github: ['orders:read'] }],
    '3.0: scopes only for oauth2/openIdConnect schemes')
  t.same(operation(doc, '/optional').security, [{ session: [] }, {}], 'optional: also the empty requirement')
  t.same(operation(doc, '/roles').security, [{ token: [] }])
  t.same(operation(doc, '/decorator').security, [{ session: [] }], 'a verify* decorator is a guard too')
  t.same(operation(doc, '/stacked').security, [{ basic: [], apiKey: [] }, { basic: [], apiKeyQuery: [] }, { token: [], apiKey: [] }, { token: [], apiKeyQuery: [] }],
    'two guards on one route: both must pass')
  t.same(operation(doc, '/own').security, [{ partner: [] }], 'a route\'s own security is kept')
  t.same(operation(doc, '/own-ours').security, [{ basic: [] }], '... also when it names one of the plugin\'s schemes')
  t.same(operation(doc, '/api/v1/users').security, [{ basic: [] }, { token: [] }], 'a guard added with addHook covers the plugin\'s routes')
  t.same(operation(doc, '/api/v1/nested').security, [{ basic: [] }, { token: [] }], '... and its child plugins\' routes')
  t.same(operation(doc, '/tokens/', 'post').security, [{ basic: [] }, { session: [] }], 'the token route: password-based methods only')
  t.notOk(JSON.stringify(doc).includes('x-multiauth'), 'no carrier key is left in the document')
  t.equal(app.swagger(), doc, 'the cached document is returned again')
  t.same(operation(app.swagger() as Doc, '/any').security, operation(doc, '/any').security, 'and completed once')

  const yaml = app.swagger({ yaml: true }) as string
  t.same(JSON.parse(yaml), doc, 'YAML: the same document in JSON notation (YAML 1.2)')
})

t.test('OpenAPI 3.1: scopes in every requirement of a scoped guard', async (t) => {
  const app = await build('3.1.0')
  t.teardown(() => app.close())
  const doc = app.swagger() as Doc
  t.equal(doc.openapi, '3.1.0')
  await validate(t, doc)
  t.same(operation(doc, '/scoped').security, [{ token: ['orders:read'] }, { oauth2_local: ['orders:read'] }, { oauth2_github: ['orders:read'] }])
})

t.test('a guard with rate limits is documented like any other', async (t) => {
  const app = Fastify()
  await app.register(swagger, { openapi: { info: { title: 't', version: '1' } } })
  await app.register(multiauth, { apiKey: { verify: () => ({ id: 'k' }) }, rateLimit: { max: 10 } })
  app.get('/limited', { onRequest: app.authGuard(['apiKey']) }, ok)
  await app.ready()
  t.teardown(() => app.close())
  const doc = app.swagger() as Doc
  await validate(t, doc)
  t.same(doc.components.securitySchemes, { apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } }, 'components created when the application gave none')
  t.same(operation(doc, '/limited').security, [{ apiKey: [] }])
})

t.test('without @fastify/swagger nothing changes', async (t) => {
  const app = Fastify()
  await app.register(multiauth, { basic: { verify: () => ({ id: 'a' }) } })
  let seen: unknown
  app.addHook('onRoute', (route) => { if (route.url === '/g') seen = route })
  app.get('/g', { onRequest: app.authGuard(['basic']) }, ok)
  await app.ready()
  t.teardown(() => app.close())
  t.equal((seen as { schema?: unknown }).schema, undefined, 'the route schema is untouched')
  t.equal((await app.inject({ url: '/g' })).statusCode, 401, 'and the guard still guards')
})

t.test('the guard itself is unchanged: 401 with a challenge on a documented route', async (t) => {
  const app = await build(undefined)
  t.teardown(() => app.close())
  const res = await app.inject({ url: '/api/v1/users' })
  t.equal(res.statusCode, 401)
  t.match(res.headers['www-authenticate'], /Basic realm="docs"/)
  const okRes = await app.inject({ url: '/api/v1/users', headers: { authorization: 'Basic ' + Buffer.from('a:b').toString('base64') } })
  t.equal(okRes.statusCode, 200)
})
