// The packed tarball, installed into a fresh project, works from `import` and from `require`
// with a real Fastify instance, and its declarations compile for both kinds of consumer.
// Needs the build (`npm run build`, which `npm test` runs first).
import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createRequire } from 'node:module'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)
const fastifyVersion: string = require('fastify/package.json').version
const typesNodeVersion: string = require('@types/node/package.json').version
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

// The same little app for both module systems: a Basic user with an argon2id hash made by
// the package's own helper, one guarded route, one 200 and one 401 through inject.
const appBody = (multiauth: string) => `
const app = Fastify()
const passwordHash = await hashPassword('s3cret')
await app.register(${multiauth}, {
  realm: 'pkg',
  basic: { findUser: async (name) => (name === 'alice' ? { user: { id: 'alice' }, passwordHash } : null) }
})
app.get('/me', { onRequest: app.authGuard(['basic']) }, async (request) => ({ id: request.user.id, via: request.auth.method }))
const ok = await app.inject({ url: '/me', headers: { authorization: 'Basic ' + Buffer.from('alice:s3cret').toString('base64') } })
const bad = await app.inject({ url: '/me', headers: { authorization: 'Basic ' + Buffer.from('alice:wrong').toString('base64') } })
await app.close()
console.log(JSON.stringify({ ok: [ok.statusCode, ok.json()], bad: [bad.statusCode, bad.headers['www-authenticate'], bad.json().code] }))
`

const ESM = `import Fastify from 'fastify'
import multiauth, { fastifyMultiauth, hashPassword, MemoryStore, UnauthorizedError } from 'fastify-multiauth'
if (fastifyMultiauth !== multiauth || typeof MemoryStore !== 'function' || typeof UnauthorizedError !== 'function') throw new Error('named exports')
${appBody('multiauth')}`

// CommonJS: the module itself is the plugin (as with Fastify's own plugins), with .default and named exports.
const CJS = `const Fastify = require('fastify')
const multiauth = require('fastify-multiauth')
const { hashPassword, MemoryStore, fastifyMultiauth } = multiauth
if (multiauth.default !== multiauth || fastifyMultiauth !== multiauth || typeof MemoryStore !== 'function') throw new Error('named exports')
;(async () => {
${appBody('multiauth')}
})().catch((err) => { console.error(err); process.exitCode = 1 })`

const TS_ESM = `import Fastify from 'fastify'
import multiauth, { hashPassword } from 'fastify-multiauth'
declare module 'fastify-multiauth' { interface MultiauthUser { id: string } }
const app = Fastify()
const passwordHash = await hashPassword('x')
await app.register(multiauth, { basic: { findUser: async () => ({ user: { id: 'a' }, passwordHash }) } })
app.get('/', { onRequest: app.authGuard(['basic']) }, async (request) => request.user?.id)
// @ts-expect-error not a method name
app.authGuard(['nope'])
`
const TS_CJS = `import Fastify = require('fastify')
import multiauth = require('fastify-multiauth')
declare module 'fastify-multiauth' { interface MultiauthUser { id: string } }
const app = Fastify()
app.register(multiauth.default, { basic: { verify: (username) => ({ id: username }) } })
app.get('/', { onRequest: app.authGuard(['basic']) }, async (request) => request.user?.id)
// @ts-expect-error the user type is enforced
app.register(multiauth.fastifyMultiauth, { basic: { verify: () => ({ name: 'x' }) } })
`

const expected = { ok: [200, { id: 'alice', via: 'basic' }], bad: [401, 'Basic realm="pkg", charset="UTF-8"', 'FST_MULTIAUTH_UNAUTHORIZED'] }

t.test('the packed tarball installs and works from import and require', { timeout: 300_000 }, async (t) => {
  t.ok(existsSync(join(root, 'dist', 'index.js')) && existsSync(join(root, 'dist', 'index.cjs')), 'dist/ is built (npm run build)')
  const dir = await mkdtemp(join(tmpdir(), 'multiauth-pkg-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))

  const { stdout: packed } = await run(npm, ['pack', '--json', '--pack-destination', dir], { cwd: root, maxBuffer: 1 << 24 })
  const [info] = JSON.parse(packed) as Array<{ filename: string, files: Array<{ path: string }> }>
  if (info === undefined) throw new Error('npm pack printed no result')
  const shipped = info.files.map((f) => f.path).sort()
  t.same(shipped.filter((p) => !/^(dist\/|README\.md$|LICENSE$|CHANGELOG\.md$|package\.json$)/.test(p)), [], 'only dist, README, LICENSE, CHANGELOG ship')
  t.ok(shipped.includes('dist/index.d.ts') && shipped.includes('dist/index.d.cts'), 'both declaration files ship')

  const project = join(dir, 'app')
  await mkdir(project)
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }))
  await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error',
    join(dir, info.filename), `fastify@${fastifyVersion}`, `@types/node@${typesNodeVersion}`], { cwd: project, maxBuffer: 1 << 24 })
  t.ok((await readdir(join(project, 'node_modules'))).includes('fastify-multiauth'), 'installed')

  await writeFile(join(project, 'esm.mjs'), ESM)
  await writeFile(join(project, 'cjs.cjs'), CJS)
  for (const file of ['esm.mjs', 'cjs.cjs']) {
    const { stdout } = await run(process.execPath, [file], { cwd: project, timeout: 60_000 })
    t.same(JSON.parse(stdout), expected, `${file}: 200 for the right password, 401 with a challenge otherwise`)
  }

  // The declarations as installed, checked with lib checking on (skipLibCheck: false).
  await writeFile(join(project, 'consumer.mts'), TS_ESM)
  await writeFile(join(project, 'consumer.cts'), TS_CJS)
  await writeFile(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
    files: ['consumer.mts']
  }))
  await writeFile(join(project, 'tsconfig.cjs.json'), JSON.stringify({ extends: './tsconfig.json', files: ['consumer.cts'] }))
  for (const config of ['tsconfig.json', 'tsconfig.cjs.json']) {
    const result = await run(process.execPath, [tsc, '-p', config], { cwd: project, timeout: 120_000 }).then(
      () => '', (err: { stdout?: string }) => err.stdout ?? String(err))
    t.equal(result, '', `${config}: the installed types compile`)
  }
})
