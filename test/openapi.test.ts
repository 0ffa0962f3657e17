import t from 'tap'
import type { Test } from 'tap'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import { Validator } from '@seriousme/openapi-schema-validator'
import { build as esbuild } from 'esbuild'
import { parse as parseYaml } from 'yaml'
import multiauth, { multiauthOpenApi, MultiauthOptionError } from '../src/index.js'
import type { MultiauthOptions } from '../src/index.js'
import { startOidcProvider } from './helpers/oidc-provider.js'
import type { TestProvider } from './helpers/oidc-provider.js'

// The OpenAPI document @fastify/swagger generates with `multiauthOpenApi(app, options)`: checked
// by value and by an OpenAPI validator, for both registration orders and OpenAPI 3.0 and 3.1.

type Doc = Record<string, any>
type Order = 'swagger first' | 'multiauth first'
const ok = async (): Promise<{ ok: boolean }> => ({ ok: true })
const SECRET = 'x'.repeat(32)
const root = fileURLToPath(new URL('..', import.meta.url))
const basicAuth = 'Basic ' + Buffer.from('a:b').toString('base64')

async function validate (t: Test, doc: Doc): Promise<void> {
  const result = await new Validator().validate(doc)
  t.ok(result.valid, `the document validates as ${doc.openapi === undefined ? `Swagger ${String(doc.swagger)}` : `OpenAPI ${String(doc.openapi)}`}`)
  if (!result.valid) t.comment(JSON.stringify(result.errors, null, 2))
}

let provider: TestProvider
t.before(async () => { provider = await startOidcProvider({ redirectUris: ['http://localhost:3000/auth/local/callback'] }) })
t.teardown(async () => { await provider?.close() })

function allMethods (): MultiauthOptions {
  return {
    realm: 'docs',
    basic: { verify: (u, p) => u === 'a' && p === 'b' ? { id: 'a' } : null, allowToken: true },
    token: { secret: SECRET, findUser: (claims) => ({ id: claims.sub }), routes: true },
    apiKey: { verify: (key) => key === 'k' ? { id: 'k' } : null, header: 'X-Service-Key', query: 'key' },
    session: { secret: SECRET, secure: false, cookieName: 'app-sid', findUser: (id) => ({ id }) },
    oauth2: {
      baseUrl: 'http://localhost:3000',
      providers: {
        local: { issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret },
        github: { preset: 'github', clientId: 'gh-client', clientSecret: 'gh-secret' }
      },
      findUser: (profile) => ({ id: profile.id })
    },
    roles: () => ['admin']
  }
}

/** The application's swagger options: its own components stay, and its own scheme under one of our names wins. */
function swaggerOptions (openapi: string | undefined): Record<string, unknown> {
  return {
    openapi: {
      ...(openapi === undefined ? {} : { openapi }),
      info: { title: 'test', version: '1.0.0' },
      components: { securitySchemes: { partner: { type: 'http', scheme: 'bearer' } } }
    }
  }
}

/** The same application, documented as OpenAPI 3.0.3 (swagger's default) or 3.1.0, with the plugins registered in either order. */
async function build (order: Order, openapi: string | undefined): Promise<FastifyInstance> {
  const app = Fastify()
  if (order === 'swagger first') {
    await app.register(swagger, multiauthOpenApi(app, swaggerOptions(openapi)))
    await app.register(multiauth, allMethods())
  } else {
    await app.register(multiauth, allMethods())
    await app.register(swagger, multiauthOpenApi(app, swaggerOptions(openapi)))
  }

  app.get('/public', ok)
  app.get('/any', { onRequest: app.authGuard(['basic', 'token', 'apiKey']) }, ok)
  app.get('/all', { onRequest: app.authGuard({ methods: ['basic', 'apiKey'], mode: 'all' }) }, ok)
  app.get('/scoped', { onRequest: app.authGuard({ methods: ['token', 'oauth2'], scopes: ['orders:read'] }) }, ok)
  app.get('/optional', { onRequest: app.authGuard({ methods: ['session'], optional: true }) }, ok)
  app.get('/roles', { onRequest: [app.authGuard({ methods: ['token'], roles: ['admin'] })] }, ok)
  app.get('/decorator', { onRequest: app.verifySession }, ok)
  app.get('/late', { preValidation: app.authGuard(['apiKey']) }, ok)
  app.get('/stacked', { onRequest: app.authGuard(['basic', 'token']), preHandler: app.authGuard(['apiKey']) }, ok)
  app.get('/own', { onRequest: app.authGuard(['basic']), schema: { security: [{ partner: [] }] } }, ok)
  // Naming one of our schemes, which the application's swagger options do not hold.
  app.get('/own-ours', { onRequest: app.authGuard(['basic', 'token']), schema: { security: [{ basic: [] }] } }, ok)
  // One schema object for two routes with different guards: each gets its own requirements.
  const shared = { summary: 'shared' }
  app.get('/shared-basic', { onRequest: app.authGuard(['basic']), schema: shared }, ok)
  app.get('/shared-token', { onRequest: app.authGuard(['token']), schema: shared }, ok)

  // One guard for a whole plugin (a route prefix), the documented way: the guard goes into the options of every route of the
  // plugin (and of its children) by an onRoute hook, so each route is guarded and documented.
  await app.register(async (api) => {
    const guard = api.authGuard(['basic', 'token'])
    api.addHook('onRoute', (route) => { route.onRequest = [guard, ...[route.onRequest ?? []].flat()] })
    api.get('/users', ok)
    await api.register(async (nested) => { nested.get('/nested', ok) })
  }, { prefix: '/api/v1' })
  // A guard added with addHook: enforced, but invisible to the document (not in the route options)...
  await app.register(async (api) => {
    api.addHook('onRequest', api.authGuard(['basic', 'token']))
    api.get('/users', ok)
  }, { prefix: '/hooked' })
  // ... unless the routes declare it: here one onRoute hook does, and a route's own security still wins.
  await app.register(async (api) => {
    api.addHook('onRequest', api.authGuard(['basic', 'token']))
    api.addHook('onRoute', (route) => { route.schema = { security: [{ basic: [] }, { token: [] }], ...route.schema } })
    api.get('/users', ok)
    api.get('/basic-only', { schema: { security: [{ basic: [] }] } }, ok)
  }, { prefix: '/declared' })
  await app.ready()
  return app
}

function operation (doc: Doc, path: string, method = 'get'): Doc {
  return doc.paths[path][method]
}

for (const order of ['swagger first', 'multiauth first'] as const) {
  t.test(`OpenAPI 3.0, ${order}: schemes and requirements per route`, async (t) => {
    const app = await build(order, undefined)
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
    t.same(operation(doc, '/late').security, [{ apiKey: [] }, { apiKeyQuery: [] }], 'a guard in preValidation')
    t.same(operation(doc, '/stacked').security, [{ basic: [], apiKey: [] }, { basic: [], apiKeyQuery: [] }, { token: [], apiKey: [] }, { token: [], apiKeyQuery: [] }],
      'two guards on one route: both must pass')
    t.same(operation(doc, '/own').security, [{ partner: [] }], 'a route\'s own security is kept')
    t.same(operation(doc, '/own-ours').security, [{ basic: [] }], '... also when it names one of the plugin\'s schemes')
    t.same(operation(doc, '/shared-basic'), { summary: 'shared', security: [{ basic: [] }], responses: { 200: { description: 'Default Response' } } })
    t.same(operation(doc, '/shared-token').security, [{ token: [] }], 'one schema object, two guards: each route its own')
    t.same(operation(doc, '/api/v1/users').security, [{ basic: [] }, { token: [] }], 'a guard put in the route options by onRoute')
    t.same(operation(doc, '/api/v1/nested').security, [{ basic: [] }, { token: [] }], '... also in child plugins')
    t.notOk('security' in operation(doc, '/hooked/users'), 'a guard added with addHook is not seen (public API only)')
    t.same(operation(doc, '/declared/users').security, [{ basic: [] }, { token: [] }], 'such routes declare their security in the schema')
    t.same(operation(doc, '/declared/basic-only').security, [{ basic: [] }])
    if (order === 'swagger first') {
      t.same(operation(doc, '/tokens/', 'post').security, [{ basic: [] }, { session: [] }], 'the token route: password-based methods only')
    } else {
      t.notOk('/tokens/' in doc.paths, 'routes declared before @fastify/swagger is registered are not in its document (its own rule)')
    }
    t.equal(app.swagger(), doc, 'the cached document is returned again')

    // The guards guard, documented or not.
    for (const url of ['/api/v1/users', '/api/v1/nested', '/hooked/users', '/declared/users']) {
      t.equal((await app.inject({ url })).statusCode, 401, `${url}: 401 without credentials`)
      t.equal((await app.inject({ url, headers: { authorization: basicAuth } })).statusCode, 200, `${url}: 200 with them`)
    }
  })

  t.test(`OpenAPI 3.1, ${order}: scopes in every requirement of a scoped guard`, async (t) => {
    const app = await build(order, '3.1.0')
    t.teardown(() => app.close())
    const doc = app.swagger() as Doc
    t.equal(doc.openapi, '3.1.0')
    await validate(t, doc)
    t.same(operation(doc, '/scoped').security, [{ token: ['orders:read'] }, { oauth2_local: ['orders:read'] }, { oauth2_github: ['orders:read'] }])
    t.same(operation(doc, '/any').security, [{ basic: [] }, { token: [] }, { apiKey: [] }, { apiKeyQuery: [] }])
  })
}

t.test('the route schemas are left as they are', async (t) => {
  const app = Fastify()
  const seen = new Map<string, unknown>()
  await app.register(swagger, multiauthOpenApi(app, { openapi: { info: { title: 't', version: '1' } } }))
  await app.register(multiauth, { basic: { verify: () => ({ id: 'a' }) } })
  app.addHook('onRoute', (route) => { seen.set(route.url, route.schema) })
  const shared = { summary: 'shared' }
  app.get('/a', { onRequest: app.authGuard(['basic']), schema: shared }, ok)
  app.get('/b', { onRequest: app.authGuard(['basic']) }, ok)
  await app.ready()
  t.teardown(() => app.close())
  const doc = app.swagger() as Doc
  t.same(operation(doc, '/a').security, [{ basic: [] }])
  // (Fastify marks a compiled schema with a symbol of its own: only the keys are compared.)
  t.same(Object.entries(shared), [['summary', 'shared']], 'a shared schema object is not written to')
  t.equal(seen.get('/a'), shared, 'the route keeps its schema object')
  t.equal(seen.get('/b'), undefined, 'a route without a schema keeps none')
})

t.test('YAML: @fastify/swagger\'s own YAML output, with the schemes and requirements', async (t) => {
  const app = await build('swagger first', undefined)
  t.teardown(() => app.close())
  // Regression: the former wrapper of app.swagger() returned JSON for { yaml: true } (checked
  // against it: its output parsed as JSON, so the assertion below failed).
  const yaml = app.swagger({ yaml: true }) as unknown as string
  t.type(yaml, 'string')
  t.throws(() => JSON.parse(yaml), 'YAML, not JSON')
  t.match(yaml, /^openapi: 3\.0\.3$/m)
  t.match(yaml, /^ {2}securitySchemes:\n/m)
  t.match(yaml, /^ {4}token:\n {6}type: http\n {6}scheme: bearer\n {6}bearerFormat: JWT\n/m)
  const parsed = parseYaml(yaml) as Doc
  t.same(parsed, app.swagger(), 'the same document as the object form')
  t.same(operation(parsed, '/any').security, [{ basic: [] }, { token: [] }, { apiKey: [] }, { apiKeyQuery: [] }])
  await validate(t, parsed)
})

t.test('the application\'s own transforms are wrapped, not replaced', async (t) => {
  const app = Fastify()
  const calls: string[] = []
  await app.register(swagger, multiauthOpenApi(app, {
    openapi: { info: { title: 't', version: '1' } },
    // Like a type provider's transform: returns a new schema (and may move the url).
    transform: ({ schema, url }) => {
      calls.push(url)
      const own = url === '/stated' ? { security: [{ apiKey: [] }] } : {}
      return { schema: { ...schema, summary: `summary of ${url}`, ...own }, url: url === '/moved' ? '/renamed' : url }
    },
    // Sees the completed document, and has the last word.
    transformObject: (input) => {
      const doc = (input as { openapiObject: Doc }).openapiObject
      t.ok('basic' in doc.components.securitySchemes, 'the application\'s transformObject sees our schemes')
      return { ...doc, info: { ...doc.info, title: 'transformed' } }
    }
  }))
  await app.register(multiauth, { basic: { verify: () => ({ id: 'a' }) }, apiKey: { verify: () => ({ id: 'k' }) } })
  app.get('/guarded', { onRequest: app.authGuard(['basic']) }, ok)
  app.get('/moved', { onRequest: app.authGuard(['basic']) }, ok)
  app.get('/stated', { onRequest: app.authGuard(['basic']) }, ok)
  await app.ready()
  t.teardown(() => app.close())
  const doc = app.swagger() as Doc
  await validate(t, doc)
  t.same(calls.sort(), ['/guarded', '/moved', '/stated'], 'the application\'s transform ran for each route')
  t.same(operation(doc, '/guarded'), { summary: 'summary of /guarded', security: [{ basic: [] }], responses: { 200: { description: 'Default Response' } } })
  t.same(operation(doc, '/renamed').security, [{ basic: [] }], 'its url is kept')
  t.same(operation(doc, '/stated').security, [{ apiKey: [] }], 'a security its transform states wins')
  t.equal(doc.info.title, 'transformed')
})

t.test('the global security option may name our schemes', async (t) => {
  const app = Fastify()
  await app.register(multiauth, { token: { secret: SECRET, findUser: () => ({ id: 'x' }) } })
  await app.register(swagger, multiauthOpenApi(app, { openapi: { info: { title: 't', version: '1' }, security: [{ token: [] }] } }))
  app.get('/g', ok)
  await app.ready()
  t.teardown(() => app.close())
  const doc = app.swagger() as Doc
  await validate(t, doc)
  t.same(doc.security, [{ token: [] }])
  t.same(doc.components.securitySchemes, { token: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } }, 'components created when the application gave none')
})

t.test('a document without guarded routes still gets the schemes (transformObject)', async (t) => {
  const app = Fastify()
  await app.register(swagger, multiauthOpenApi(app, { openapi: { info: { title: 't', version: '1' } } }))
  await app.register(multiauth, { apiKey: { verify: () => ({ id: 'k' }) }, rateLimit: { perCredential: { max: 10 } } })
  await app.ready()
  t.teardown(() => app.close())
  const doc = app.swagger() as Doc
  await validate(t, doc)
  t.same(doc.paths, {})
  t.same(doc.components.securitySchemes, { apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } })
})

t.test('Swagger 2.0: the document is left as @fastify/swagger generates it', async (t) => {
  async function swagger2 (withMultiauth: boolean): Promise<Doc> {
    const app = Fastify()
    const options = { swagger: { info: { title: 't', version: '1' } } }
    await app.register(swagger, withMultiauth ? multiauthOpenApi(app, options) : options)
    await app.register(multiauth, { basic: { verify: () => ({ id: 'a' }) }, session: { secret: SECRET, secure: false, findUser: (id) => ({ id }) } })
    app.get('/g', { onRequest: app.authGuard(['basic', 'session']) }, ok)
    await app.ready()
    const doc = app.swagger() as Doc
    await app.close()
    return doc
  }
  const doc = await swagger2(true)
  t.equal(doc.swagger, '2.0')
  await validate(t, doc)
  t.same(doc, await swagger2(false), 'the same document as without multiauthOpenApi')
})

t.test('misuse is refused with a clear error', async (t) => {
  const app = Fastify()
  t.throws(() => multiauthOpenApi(app, { transform: 'no' }), new MultiauthOptionError('multiauthOpenApi: options.transform must be a function'))
  t.throws(() => multiauthOpenApi(app, { transformObject: {} }), new MultiauthOptionError('multiauthOpenApi: options.transformObject must be a function'))
  t.throws(() => multiauthOpenApi(app, { mode: 'static' }), { code: 'FST_MULTIAUTH_INVALID_OPTION', message: /options\.mode must be 'dynamic'/ })
  t.throws(() => multiauthOpenApi(app, null as unknown as object), { code: 'FST_MULTIAUTH_INVALID_OPTION' })

  // fastify-multiauth registered in a sibling context, so not on `app`: said at the first document.
  await app.register(swagger, multiauthOpenApi(app, { openapi: { info: { title: 't', version: '1' } } }))
  await app.register(async (child) => {
    await child.register(multiauth, { basic: { verify: () => ({ id: 'a' }) } })
    child.get('/g', { onRequest: child.authGuard(['basic']) }, ok)
  })
  await app.ready()
  t.teardown(() => app.close())
  t.throws(() => app.swagger(), { code: 'FST_MULTIAUTH_INVALID_OPTION', message: /fastify-multiauth is not registered on app or a parent of it/ })
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

t.test('no private Fastify API: no hook list read, no decorator replaced', async (t) => {
  const dir = join(root, 'src')
  const files = (await readdir(dir, { recursive: true })).filter((f) => f.endsWith('.ts'))
  t.ok(files.includes(join('integrations', 'openapi.ts')))
  const offenders: string[] = []
  for (const file of files) {
    const source = await readFile(join(dir, file), 'utf8')
    // Fastify's hook list (the symbol described 'fastify.hooks'), found by listing an instance's symbols.
    if (/fastify\.hooks|getOwnPropertySymbols|kHooks/.test(source)) offenders.push(`${file}: reads Fastify's private hook list`)
    if (/\.swagger\s*=[^=]/.test(source)) offenders.push(`${file}: replaces app.swagger`)
  }
  t.same(offenders, [], `none of the ${files.length} source files does`)
  // And by behaviour: a guard that only Fastify's private hook list holds is not documented.
  const app = await build('swagger first', undefined)
  t.teardown(() => app.close())
  t.notOk('security' in operation(app.swagger() as Doc, '/hooked/users'), 'a guard added with addHook is not documented')
})

t.test('CommonJS build: works alone and together with the ES module build', async (t) => {
  // The package's CJS build, made the way tsup.config.ts makes it (same define and footer), into a directory inside
  // the repository so that it resolves the same node_modules.
  const dir = await mkdtemp(join(root, '.openapi-cjs-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const outfile = join(dir, 'index.cjs')
  await esbuild({
    entryPoints: [join(root, 'src', 'index.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    packages: 'external',
    outfile,
    logLevel: 'silent',
    // As tsup.config.ts does for the CommonJS build.
    define: { 'import.meta.url': '__filename' },
    footer: { js: 'if (typeof module.exports.default === "function") module.exports = Object.assign(module.exports.default, module.exports);' }
  })
  const require = createRequire(outfile)
  const cjs = require(outfile) as typeof multiauth & { multiauthOpenApi: typeof multiauthOpenApi }
  const cjsSwagger = require('@fastify/swagger') as typeof swagger

  for (const [label, plugin, helper] of [
    ['CJS plugin, CJS helper', cjs, cjs.multiauthOpenApi],
    ['ESM plugin, CJS helper', multiauth, cjs.multiauthOpenApi],
    ['CJS plugin, ESM helper', cjs, multiauthOpenApi]
  ] as const) {
    const app = Fastify()
    await app.register(cjsSwagger, helper(app, { openapi: { info: { title: 't', version: '1' } } }))
    await app.register(plugin, { basic: { verify: () => ({ id: 'a' }) } })
    app.get('/g', { onRequest: app.authGuard(['basic']) }, ok)
    await app.ready()
    const doc = app.swagger() as Doc
    await app.close()
    t.same(doc.components.securitySchemes, { basic: { type: 'http', scheme: 'basic' } }, `${label}: the scheme`)
    t.same(operation(doc, '/g').security, [{ basic: [] }], `${label}: the requirement`)
  }
})
