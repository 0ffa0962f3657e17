// The package as a user gets it. A copy of this tree WITHOUT dist/ is packed (the `prepare`
// script builds it: before 0.2 the tarball shipped no dist/), the tarball is installed into fresh
// projects, and:
// - an application using only Basic and API keys installs none of the optional peers, works from
//   `import` and from `require`, and gets a registration error naming the package to install
//   when it configures token, session, oauth2 or a RedisStore without it;
// - with every peer installed, the methods load them from the application's node_modules;
// - the runtime exports are exactly the public surface, the same from `import` and `require`;
// - `fastify-multiauth/request-user` loads from `import` and from `require`, and with it
//   `request.user` is typed as the application's MultiauthUser (without it, not declared at all);
// - the declarations compile for ESM and CommonJS consumers (`require()` is the plugin itself);
// - the footprint (packages, MB) of each method set is printed: the README's table.
import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createRequire } from 'node:module'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)
const manifest = require('../package.json') as { peerDependencies: Record<string, string> }
const versionOf = (name: string): string => (require(`${name}/package.json`) as { version: string }).version
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const range = (name: string): string => `${name}@${manifest.peerDependencies[name] as string}`

const OPTIONAL_PEERS = ['@fastify/cookie', '@fastify/jwt', '@fastify/oauth2', '@fastify/session', 'ioredis', 'jose']
for (const name of OPTIONAL_PEERS) {
  t.ok(manifest.peerDependencies[name] !== undefined, `${name} is a peer dependency`)
}

// Method sets and the peers each one installs (at the versions this tree is tested with). The
// first and last are installed on every run; the others only with FOOTPRINT=1 (the README's table).
const SETS: Array<{ name: string, peers: string[] }> = [
  { name: 'Basic + API keys', peers: [] },
  ...(process.env.FOOTPRINT === '1'
    ? [
        { name: 'Basic + API keys + token', peers: ['@fastify/jwt'] },
        { name: 'Basic + API keys + session', peers: ['@fastify/session', '@fastify/cookie'] },
        { name: 'Basic + API keys + session + oauth2', peers: ['@fastify/session', '@fastify/cookie', '@fastify/oauth2', 'jose'] },
        { name: 'Basic + API keys + RedisStore', peers: ['ioredis'] }
      ]
    : []),
  { name: 'every method and RedisStore', peers: OPTIONAL_PEERS }
]
// Packing (a build) and three to eight installs: more than tap's default per-file timeout.
t.setTimeout(600_000)

// ---- the consumer programs ----

// The runtime exports: the public surface of src/index.ts, nothing more (0.x's login, logout,
// clearVerifiedCredentials and UnauthorizedError are gone). The same names from import and require.
const EXPORTS = [
  'AUTHENTICATE_TRACING_CHANNEL', 'BadRequestError', 'BusyError', 'CallbackError', 'CallbackTimeoutError', 'CredentialsInvalidError', 'CredentialsMissingError',
  'CrossSiteError', 'ForbiddenError', 'InvalidGrantError', 'InvalidTokenRequestError', 'IssuerUnavailableError',
  'MULTIAUTH_CHANNELS', 'MemoryStore', 'MultiauthOptionError', 'NotConfiguredError', 'OAUTH2_REFUSAL_REASONS', 'OAuth2ProviderError', 'PASSWORD_HASH_OPTIONS',
  'REFUSAL_REASONS', 'RedisStore', 'StoreDataError', 'StoreUnavailableError',
  'TooManyRequestsError', 'UnsupportedGrantTypeError', 'UnsupportedTokenTypeError', 'apiKeyId', 'apiKeyMatches', 'constantTimeEqual',
  'default', 'describeApiKey', 'fastifyMultiauth', 'generateApiKey', 'hashApiKey', 'hashPassword', 'isApiKey', 'multiauthOpenApi',
  'needsRehash', 'parseApiKey', 'readApiKeyUsage', 'rotateApiKey', 'subscribeMultiauth', 'verifyPassword'
]

// Basic (argon2id hash made by the package's own helper) and API keys, one guarded route.
// `request.user` is set at runtime whether or not its type is imported: the same object as `request.auth.user`.
const basicAndApiKey = `
const app = Fastify()
const passwordHash = await hashPassword('s3cret')
await app.register(multiauth, {
  realm: 'pkg',
  basic: { findCredential: async (name) => (name === 'alice' ? { user: { id: 'alice' }, passwordHash } : null) },
  apiKey: { verify: (key) => (key === 'k-123' ? { id: 'robot' } : null) }
})
app.get('/me', { onRequest: app.authGuard(['basic', 'apiKey']) }, async (request) => ({
  id: request.auth.user.id, via: request.auth.method, requestUser: request.user === request.auth.user
}))
const ok = await app.inject({ url: '/me', headers: { authorization: 'Basic ' + Buffer.from('alice:s3cret').toString('base64') } })
const key = await app.inject({ url: '/me', headers: { 'x-api-key': 'k-123' } })
const bad = await app.inject({ url: '/me', headers: { authorization: 'Basic ' + Buffer.from('alice:wrong').toString('base64') } })
await app.close()
result.app = { ok: [ok.statusCode, ok.json()], key: [key.statusCode, key.json()], bad: [bad.statusCode, bad.json().code] }
`
const expectedApp = {
  ok: [200, { id: 'alice', via: 'basic', requestUser: true }],
  key: [200, { id: 'robot', via: 'apiKey', requestUser: true }],
  bad: [401, 'FST_MULTIAUTH_CREDENTIALS_INVALID']
}

// Each method that needs an optional peer, configured; and a RedisStore that would connect itself.
// oauth2 needs session; without the peers it comes alone, so that its own error is the one seen.
const peerCases = (withPeers: boolean): string => `
const session = { secret: 's'.repeat(32), findUser: (id) => ({ id }), secure: false }
const oauth2 = { baseUrl: 'http://localhost:3000', findUser: (p) => ({ id: p.subject }), providers: { github: { preset: 'github', clientId: 'id', clientSecret: 'secret' } } }
const cases = {
  token: { token: { secret: 'x'.repeat(32), findUser: (claims) => ({ id: claims.sub }) } },
  tokenIssuers: { token: { issuers: [{ issuer: 'https://idp.example', jwksUri: 'https://idp.example/jwks', audience: 'api' }], findUser: (claims) => ({ id: claims.sub }) } },
  session: { session },
  oauth2: ${withPeers ? '{ session, oauth2 }' : '{ oauth2 }'}
}
result.peers = {}
for (const [name, options] of Object.entries(cases)) {
  const app = Fastify()
  try {
    await app.register(multiauth, options)
    if (name === 'token') {
      const { accessToken } = await app.authTokens.issue({ id: 'alice' })
      app.get('/me', { onRequest: app.authGuard(['token']) }, async (request) => request.auth.user.id)
      const res = await app.inject({ url: '/me', headers: { authorization: 'Bearer ' + accessToken } })
      result.peers[name] = { loaded: true, status: res.statusCode, body: res.body }
    } else {
      result.peers[name] = { loaded: true }
    }
  } catch (err) {
    result.peers[name] = { name: err.name, code: err.code, message: err.message, optionError: err instanceof MultiauthOptionError }
  }
  await app.close().catch(() => {})
}
try {
  const store = new RedisStore({ connection: { host: '127.0.0.1', port: 1, lazyConnect: true } })
  result.peers.RedisStore = { loaded: true, client: typeof store.client.get }
  await store.close()
} catch (err) {
  result.peers.RedisStore = { name: err.name, code: err.code, message: err.message, optionError: err instanceof MultiauthOptionError }
}
`

const ESM = (withPeers: boolean): string => `import Fastify from 'fastify'
import multiauth, { fastifyMultiauth, hashPassword, MemoryStore, MultiauthOptionError, RedisStore } from 'fastify-multiauth'
import * as requestUser from 'fastify-multiauth/request-user'
const result = {
  exports: fastifyMultiauth === multiauth && typeof MemoryStore === 'function',
  names: Object.keys(await import('fastify-multiauth')).sort(),
  requestUser: Object.keys(requestUser)
}
${basicAndApiKey}
${peerCases(withPeers)}
console.log(JSON.stringify(result))
`
// CommonJS: the module itself is the plugin (as with Fastify's own plugins), with .default and named exports.
// Regression: require('fastify-multiauth/request-user') threw (TypeError: Cannot convert undefined or null
// to object) while the CJS footer of tsup.config.ts ran on an entry without a default export; this failed then.
const CJS = (withPeers: boolean): string => `const Fastify = require('fastify')
const multiauth = require('fastify-multiauth')
const requestUser = require('fastify-multiauth/request-user')
const { hashPassword, MemoryStore, MultiauthOptionError, RedisStore, fastifyMultiauth } = multiauth
const result = {
  exports: typeof multiauth === 'function' && multiauth.default === multiauth && fastifyMultiauth === multiauth && typeof MemoryStore === 'function',
  names: Object.keys(multiauth).sort(),
  requestUser: Object.keys(requestUser)
}
;(async () => {
${basicAndApiKey}
${peerCases(withPeers)}
console.log(JSON.stringify(result))
})().catch((err) => { console.error(err); process.exitCode = 1 })`

const missing = (neededBy: string, names: string[]): unknown => ({
  name: 'FastifyError', // a @fastify/error class: told apart by `code` (and `instanceof MultiauthOptionError`)
  code: 'FST_MULTIAUTH_INVALID_OPTION',
  message: `fastify-multiauth: ${neededBy} needs ${names.join(' and ')} (${names.length > 1 ? 'optional peer dependencies' : 'an optional peer dependency'} of fastify-multiauth, not installed): npm install ${names.map(range).join(' ')}`,
  optionError: true
})
const expectedWithout = {
  token: missing('the "token" option', ['@fastify/jwt']),
  tokenIssuers: missing('token.issuers', ['jose']),
  session: missing('the "session" option', ['@fastify/cookie', '@fastify/session']),
  oauth2: missing('the "oauth2" option', ['@fastify/oauth2', 'jose']),
  RedisStore: missing('RedisStore', ['ioredis'])
}
const expectedWith = {
  token: { loaded: true, status: 200, body: 'alice' },
  tokenIssuers: { loaded: true },
  session: { loaded: true },
  oauth2: { loaded: true },
  RedisStore: { loaded: true, client: 'function' }
}

// Exact type equality (not mere assignability: `any` would pass that).
const EQUAL = 'type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false'

// With \`fastify-multiauth/request-user\` imported once, \`request.user\` is the declared MultiauthUser (or null).
const TS_ESM = `import Fastify from 'fastify'
import multiauth, { hashPassword } from 'fastify-multiauth'
import type { MultiauthUser } from 'fastify-multiauth'
import 'fastify-multiauth/request-user'
declare module 'fastify-multiauth' { interface MultiauthUser { id: string } }
${EQUAL}
const app = Fastify()
const passwordHash = await hashPassword('x')
await app.register(multiauth, { basic: { findCredential: async () => ({ user: { id: 'a' }, passwordHash }) } })
app.get('/', { onRequest: app.authGuard(['basic']) }, async (request) => {
  const declared: Equal<typeof request.user, MultiauthUser | null> = true
  const merged: Equal<MultiauthUser, { id: string }> = true
  // @ts-expect-error request.user may be null
  request.user.id
  return [declared, merged, request.user?.id, request.auth?.user.id]
})
// @ts-expect-error not a method name
app.authGuard(['nope'])
`
// Without .default: \`require('fastify-multiauth')\` is the plugin (TS2769 before 0.2). The subpath
// is reached through the "require" condition (dist/request-user.d.cts).
const TS_CJS = `import Fastify = require('fastify')
import multiauth = require('fastify-multiauth')
import 'fastify-multiauth/request-user'
declare module 'fastify-multiauth' { interface MultiauthUser { id: string } }
${EQUAL}
const app = Fastify()
app.register(multiauth, { basic: { verify: (username) => ({ id: username }) } })
app.register(multiauth.default, { apiKey: { verify: (key) => ({ id: key }) } })
app.get('/', { onRequest: app.authGuard(['basic']) }, async (request) => {
  const declared: Equal<typeof request.user, multiauth.MultiauthUser | null> = true
  const merged: Equal<multiauth.MultiauthUser, { id: string }> = true
  return [declared, merged, request.user?.id, request.auth?.user.id]
})
// @ts-expect-error the user type is enforced
app.register(multiauth.fastifyMultiauth, { basic: { verify: () => ({ name: 'x' }) } })
`
// Without the subpath import, \`request.user\` is not declared by the package (it is opt-in, so it
// cannot clash with @fastify/jwt's or @fastify/passport's declaration); \`request.auth.user\` is typed.
const TS_AUTH_ONLY = `import Fastify from 'fastify'
import multiauth from 'fastify-multiauth'
declare module 'fastify-multiauth' { interface MultiauthUser { id: string } }
const app = Fastify()
await app.register(multiauth, { apiKey: { verify: (key) => ({ id: key }) } })
app.get('/', { onRequest: app.authGuard(['apiKey']) }, async (request) => {
  const id: string | undefined = request.auth?.user.id
  // @ts-expect-error request.user is declared only by fastify-multiauth/request-user
  return [id, request.user]
})
`

// ---- helpers ----

async function install (dir: string, name: string, specs: string[]): Promise<string> {
  const project = join(dir, name)
  await mkdir(project)
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }))
  await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...specs], { cwd: project, maxBuffer: 1 << 24 })
  return project
}

/** Every package npm installed (its hidden lockfile), as names. */
async function installedPackages (project: string): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(project, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, unknown> }
  return Object.keys(lock.packages).map((path) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length))
}

/** Bytes of every file under `dir` (apparent size, not disk blocks). */
async function bytesUnder (dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await bytesUnder(path)
    else if (entry.isFile()) total += (await lstat(path)).size
  }
  return total
}

async function runNode (project: string, file: string): Promise<unknown> {
  const { stdout } = await run(process.execPath, [file], { cwd: project, timeout: 60_000 })
  return JSON.parse(stdout)
}

async function typecheck (project: string, skipLibCheck: boolean): Promise<Record<string, string>> {
  await writeFile(join(project, 'consumer.mts'), TS_ESM)
  await writeFile(join(project, 'consumer.cts'), TS_CJS)
  await writeFile(join(project, 'auth-only.mts'), TS_AUTH_ONLY)
  const compilerOptions = { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck, types: ['node'] }
  const results: Record<string, string> = {}
  for (const file of ['consumer.mts', 'consumer.cts', 'auth-only.mts']) {
    await writeFile(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: [file] }))
    results[file] = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, timeout: 120_000 }).then(
      () => '', (err: { stdout?: string }) => err.stdout ?? String(err))
  }
  return results
}

// ---- the test ----

t.test('packed from a tree without dist/, installed with and without the optional peers', { timeout: 600_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'multiauth-pkg-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))

  // A clean checkout: the tree without dist/ and other ignored output; node_modules shared
  // (as after `npm ci`), so that `prepare` finds tsup without a second install.
  const tree = join(dir, 'tree')
  const ignored = new Set(['node_modules', 'dist', '.git', '.tap', 'coverage', 'test-output', '.docs-check', join('bench', '.build'), join('bench', 'profiles')])
  await cp(root, tree, { recursive: true, filter: (source) => !ignored.has(relative(root, source)) && !relative(root, source).startsWith(`dist${sep}`) })
  await symlink(join(root, 'node_modules'), join(tree, 'node_modules'), 'dir')
  t.notOk(existsSync(join(tree, 'dist')), 'the copied tree has no dist/')

  await run(npm, ['pack', '--pack-destination', dir, '--loglevel=error'], { cwd: tree, maxBuffer: 1 << 24, timeout: 300_000 })
  const tarballs = (await readdir(dir)).filter((f) => f.endsWith('.tgz'))
  t.equal(tarballs.length, 1, 'npm pack made one tarball')
  const tarball = join(dir, tarballs[0] as string)
  const { stdout: listing } = await run('tar', ['-tzf', tarball])
  const shipped = listing.split('\n').filter(Boolean).map((p) => p.replace(/^package\//, '')).sort()
  t.same(shipped.filter((p) => !/^(dist\/|README\.md$|LICENSE$|CHANGELOG\.md$|package\.json$)/.test(p)), [], 'only dist, README, LICENSE, CHANGELOG ship')
  for (const file of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/request-user.js', 'dist/request-user.cjs', 'dist/request-user.d.ts', 'dist/request-user.d.cts']) {
    t.ok(shipped.includes(file), `${file} ships (built by prepare)`)
  }

  const fastify = `fastify@${versionOf('fastify')}`
  const pinned = (name: string): string => `${name}@${versionOf(name)}`
  const footprints: Array<{ name: string, packages: number, mb: number }> = []
  const measure = async (name: string, project: string): Promise<void> => {
    footprints.push({ name, packages: (await installedPackages(project)).length, mb: await bytesUnder(join(project, 'node_modules')) / 1e6 })
  }

  await measure('fastify alone (no auth plugin)', await install(dir, 'fastify-only', [fastify]))
  let core = ''
  let everything = ''
  for (const set of SETS) {
    const project = await install(dir, `set-${footprints.length}`, [tarball, fastify, ...set.peers.map(pinned)])
    await measure(set.name, project)
    if (set.peers.length === 0) core = project
    if (set === SETS[SETS.length - 1]) everything = project
  }
  t.comment('node_modules of a new project with fastify and the tarball (packages; MB of files), by method set:')
  for (const f of footprints) t.comment(`  ${f.name.padEnd(36)} ${String(f.packages).padStart(4)} packages ${f.mb.toFixed(1).padStart(6)} MB`)

  t.test('Basic + API keys only: no optional peer is installed, everything else works', async (t) => {
    const installed = await installedPackages(core)
    t.ok(installed.includes('fastify-multiauth') && installed.includes('argon2'), 'installed, with argon2')
    t.same(OPTIONAL_PEERS.filter((name) => installed.includes(name)), [], 'none of ioredis, @fastify/oauth2, @fastify/session, @fastify/cookie, @fastify/jwt, jose')
    await writeFile(join(core, 'esm.mjs'), ESM(false))
    await writeFile(join(core, 'cjs.cjs'), CJS(false))
    for (const file of ['esm.mjs', 'cjs.cjs']) {
      const result = await runNode(core, file) as Record<string, unknown>
      t.equal(result.exports, true, `${file}: default, named and (CommonJS) module exports`)
      t.same(result.names, EXPORTS, `${file}: exactly the public runtime exports`)
      t.same(result.requestUser, [], `${file}: fastify-multiauth/request-user loads (types only: it exports nothing)`)
      t.same(result.app, expectedApp, `${file}: Basic and API key work; 401 on a wrong password`)
      t.same(result.peers, expectedWithout, `${file}: token, session, oauth2 and RedisStore fail at registration, naming what to install`)
    }
  })

  t.test('every optional peer installed: each method loads it from the application', async (t) => {
    await writeFile(join(everything, 'esm.mjs'), ESM(true))
    await writeFile(join(everything, 'cjs.cjs'), CJS(true))
    for (const file of ['esm.mjs', 'cjs.cjs']) {
      const result = await runNode(everything, file) as Record<string, unknown>
      t.same(result.app, expectedApp, `${file}: Basic and API key work`)
      t.same(result.names, EXPORTS, `${file}: exactly the public runtime exports`)
      t.same(result.requestUser, [], `${file}: fastify-multiauth/request-user loads`)
      t.same(result.peers, expectedWith, `${file}: token (a token issued and accepted), session, oauth2 and RedisStore load`)
    }
  })

  t.test('the installed declarations compile (ESM and CommonJS consumers)', async (t) => {
    const typesNode = `@types/node@${versionOf('@types/node')}`
    // With every peer: lib checking on. Regression: with the request-user entry, dist/index.d.cts kept tsup's
    // chunk re-exports next to `export =` (TS2309 in every CommonJS consumer); consumer.cts failed here before
    // scripts/cjs-types.mjs turned them into imports.
    await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', typesNode], { cwd: everything, maxBuffer: 1 << 24 })
    t.same(await typecheck(everything, false), { 'consumer.mts': '', 'consumer.cts': '', 'auth-only.mts': '' }, 'skipLibCheck: false')
    // Basic + API keys only: the declarations name ioredis' client type (RedisStore.client),
    // so lib checking needs ioredis; without it, skipLibCheck (tsc --init's default) is needed.
    await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', typesNode], { cwd: core, maxBuffer: 1 << 24 })
    t.same(await typecheck(core, true), { 'consumer.mts': '', 'consumer.cts': '', 'auth-only.mts': '' }, 'without the peers, skipLibCheck: true')
  })
})
