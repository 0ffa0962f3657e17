import t from 'tap'
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { portClosed, root, runFlow, startExample, statuses } from './helpers/example-process.js'
import { freePort, redisSkipReason, startRedis } from './helpers/redis.js'
import { apiKeyId } from '../src/index.js'

// The example as a user runs it: one command, its own redis-server, real HTTP; the admin script
// against the same Redis; and what a user without Redis sees.
const skip = redisSkipReason()
const tsx = import.meta.resolve('tsx')

/** Runs an example script with tsx from `cwd` (the repository root unless said), bounded. */
function run (script: string, args: string[], env: NodeJS.ProcessEnv, cwd = root): { status: number | null, stdout: string, stderr: string } {
  return spawnSync(process.execPath, ['--import', tsx, join(root, script), ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 })
}

function admin (redisUrl: string, ...args: string[]): any {
  const res = run('examples/api-keys-redis/admin.ts', [...args, '--json'], { REDIS_URL: redisUrl })
  if (res.status !== 0) throw new Error(`admin ${args.join(' ')} failed: ${res.stderr}`)
  return JSON.parse(res.stdout)
}

/** One line on stderr, no stack trace. */
function oneLine (t: Test, stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '')
  t.equal(lines.length, 1, `one line on stderr: ${JSON.stringify(stderr)}`)
  t.match(lines[0], pattern)
  t.notMatch(stderr, /^\s+at /m, 'no stack trace')
}

t.test('examples/api-keys-redis: server and admin script over real HTTP, on the same Redis', { skip }, async (t) => {
  const { flow, base, stdout, child } = await startExample(t, 'api-keys-redis', { REDIS_URL: '' }) // the example starts its own redis-server
  const redisUrl = (/^REDIS_URL=(\S+)$/m.exec(stdout) as RegExpExecArray)[1] as string
  const demoKey = (/^KEY=(\S+)$/m.exec(flow) as RegExpExecArray)[1] as string
  t.match(flow, /^curl -s http:\/\/127\.0\.0\.1:\d+\/orders -H "X-API-Key: \$KEY"/m, 'prints a ready curl line')

  // The printed lines, pasted into a shell from the repository root (they call admin.ts).
  const out = await runFlow(flow, root)
  t.same(statuses(out), [200, 200, 403], 'the demo key on /orders; a key issued by admin.ts: /me yes, /orders no (scope)')
  t.match(out, '{"orders":[{"id":1,"item":"coffee"}]} HTTP 200')
  t.match(out, /^www-authenticate: ApiKey realm="orders-api", header="X-API-Key"\r$/m, 'no key: 401 with the challenge')
  t.match(out, /^1 request, last \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/m, 'admin.ts usage $KEY: the demo key\'s first request, written at once')

  const call = async (key: string | undefined, path = '/orders'): Promise<Response> => await fetch(base + path, { headers: key === undefined ? {} : { 'x-api-key': key } })
  const ok = await call(demoKey)
  t.equal(ok.status, 200)
  t.equal(ok.headers.get('ratelimit-limit'), '60')
  const missing = await call(undefined)
  t.equal(missing.status, 401)
  t.same(await missing.json(), { error: 'unauthorized', message: 'Authentication required' })
  const typo = demoKey.slice(0, -1) + (demoKey.endsWith('a') ? 'b' : 'a')
  t.same(await (await call(typo)).json(), { error: 'unauthorized', message: 'Invalid credentials' })

  // A key made by admin.ts is accepted by the server: both use REDIS_URL, nothing else.
  const issued = admin(redisUrl, 'issue', 'dave', '--scopes', 'orders:read', '--rate', '2')
  t.match(issued.key, /^demo_live_/)
  t.equal((await call(issued.key)).status, 200)
  t.equal((await call(issued.key)).status, 200)
  const limited = await call(issued.key)
  t.equal(limited.status, 429, 'its own rate limit (2 a minute)')
  t.ok(Number(limited.headers.get('retry-after')) > 0)
  const testKey = admin(redisUrl, 'issue', 'erin', '--env', 'test', '--scopes', 'orders:read')
  t.equal((await call(testKey.key)).status, 401, 'a test-environment key on this live server')

  // Rotate with a grace period: both keys work; revoke the old one: only the new one works.
  const plain = admin(redisUrl, 'issue', 'frank')
  const rotated = admin(redisUrl, 'rotate', plain.id, '--grace', '3600')
  t.equal((await call(plain.key, '/me')).status, 200, 'old key during the grace')
  t.equal((await call(rotated.key, '/me')).status, 200, 'new key')
  admin(redisUrl, 'revoke', plain.id)
  t.equal((await call(plain.key, '/me')).status, 401, 'revoked')
  t.equal((await call(rotated.key, '/me')).status, 200)

  const listed = admin(redisUrl, 'list') as Array<Record<string, unknown>>
  t.equal(listed.length, 6, "demo, carol (from the printed flow), dave, erin, frank and frank's rotated key")
  t.notOk(JSON.stringify(listed).includes(issued.key), 'list never shows a key')
  t.ok(listed.every((r) => r.hash === undefined), 'nor a hash')
  t.match(listed.find((r) => r.id === apiKeyId(demoKey)), { usage: { count: Number, lastUsedAt: String } }, 'list shows each key\'s usage')
  t.match(listed.find((r) => r.id === testKey.id), { usage: null }, 'a key refused for its environment was never used')

  // Stopping the server stops the redis-server it started.
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  t.equal(await exited, 0)
  t.ok(await portClosed(Number(new URL(redisUrl).port)), 'its redis-server is gone')
})

t.test('examples/api-keys-redis: usage over real HTTP — every request counted once the server stops, read by admin.ts usage', { skip }, async (t) => {
  const redis = await startRedis()
  t.teardown(redis.stop)
  const { base, child } = await startExample(t, 'api-keys-redis', { REDIS_URL: redis.url })
  const issued = admin(redis.url, 'issue', 'gina', '--scopes', 'orders:read')
  t.same(admin(redis.url, 'usage', issued.id), { count: 0, lastUsedAt: null }, 'not used yet')

  const before = Date.now()
  const codes: number[] = []
  for (let i = 0; i < 7; i++) codes.push((await fetch(`${base}/orders`, { headers: { 'x-api-key': issued.key } })).status)
  t.equal((await fetch(`${base}/me`, { headers: { 'x-api-key': issued.key } })).status, 200)
  const after = Date.now()
  t.same(codes, [200, 200, 200, 200, 200, 200, 200])
  const running = admin(redis.url, 'usage', issued.key)
  t.ok(running.count >= 1 && running.count <= 8, `while running: the first request at least, at most all (${running.count as number})`)

  // SIGTERM: the server writes what it counted before it closes its Redis connection.
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  t.equal(await exited, 0)
  const usage = admin(redis.url, 'usage', issued.id)
  t.equal(usage.count, 8, 'all 8 requests')
  const last = Date.parse(usage.lastUsedAt)
  t.ok(last >= before && last <= after, 'lastUsedAt is the last request\'s time')
})

t.test('examples/api-keys-redis without Redis: one line saying how to get it, exit 1, no stack trace', async (t) => {
  // No redis-server on PATH (node and tsx are found by absolute path), no REDIS_URL.
  const res = run('examples/api-keys-redis/server.ts', [], { PATH: '/nonexistent', REDIS_URL: '', PORT: '0' })
  t.equal(res.status, 1)
  oneLine(t, res.stderr, /^api-keys-redis: needs Redis, and redis-server is not installed: install it \(Debian\/Ubuntu: apt-get install redis-server.*\) or set REDIS_URL=/)

  const port = await freePort() // nothing listens there
  const unreachable = run('examples/api-keys-redis/server.ts', [], { REDIS_URL: `redis://127.0.0.1:${port}`, PORT: '0' })
  t.equal(unreachable.status, 1)
  oneLine(t, unreachable.stderr, new RegExp(`^api-keys-redis: cannot reach Redis at REDIS_URL=redis://127\\.0\\.0\\.1:${port} \\(connect ECONNREFUSED .*\\); start that Redis, fix REDIS_URL, or unset it`))
})

t.test('admin.ts without REDIS_URL refuses, in one line, instead of writing a file the server never reads', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'admin-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const res = run('examples/api-keys-redis/admin.ts', ['issue', 'alice'], { REDIS_URL: '' }, dir)
  t.equal(res.status, 1)
  oneLine(t, res.stderr, /^admin\.ts: needs REDIS_URL, the Redis the server uses: start the server \(npm run example -- api-keys-redis\) and copy the REDIS_URL=… line it prints$/)
  t.same(readdirSync(dir), [], 'no api-keys.json (or anything else) written')
  t.notOk(existsSync(join(root, 'api-keys.json')))
})
