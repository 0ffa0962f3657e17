import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { connect } from 'node:net'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { redisSkipReason } from './helpers/redis.js'

// The example as a user runs it: one command, its own redis-server, real HTTP.
const root = dirname(dirname(fileURLToPath(import.meta.url)))
const skip = redisSkipReason()

function admin (redisUrl: string, ...args: string[]): any {
  const res = spawnSync(process.execPath, ['--import', 'tsx', 'examples/api-keys-redis/admin.ts', ...args, '--json'], {
    cwd: root, env: { ...process.env, REDIS_URL: redisUrl }, encoding: 'utf8', timeout: 30_000
  })
  if (res.status !== 0) throw new Error(`admin ${args.join(' ')} failed: ${res.stderr}`)
  return JSON.parse(res.stdout)
}

async function portOpen (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

t.test('examples/api-keys-redis: server and admin script over real HTTP', { skip }, async (t) => {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0' }
  delete env.REDIS_URL // the example must start its own redis-server
  const server = spawn(process.execPath, ['--import', 'tsx', 'examples/api-keys-redis/server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => server.once('exit', resolve))
  t.teardown(async () => { if (server.exitCode === null) { server.kill('SIGKILL'); await exited } })
  let stdout = ''
  let stderr = ''
  server.stderr.on('data', (chunk) => { stderr += chunk })
  const ready = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no curl line in 30 s; stdout: ${stdout} stderr: ${stderr}`)), 30_000)
    server.stdout.on('data', (chunk) => {
      stdout += chunk
      if (/^curl .*$/m.test(stdout)) { clearTimeout(timer); resolve(stdout) }
    })
    server.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}): ${stderr}`)) })
  })
  const redisUrl = (/^REDIS_URL=(\S+)$/m.exec(ready) as RegExpExecArray)[1] as string
  const [, demoKey, base] = /^curl -H 'X-API-Key: (\S+)' (http:\/\/\S+)\/orders$/m.exec(ready) as RegExpExecArray
  t.ok(demoKey && base, 'prints a ready curl line')
  const call = (key: string | undefined, path = '/orders') => fetch(base + path, { headers: key === undefined ? {} : { 'x-api-key': key } })

  const ok = await call(demoKey)
  t.equal(ok.status, 200)
  t.same(await ok.json(), { orders: [{ id: 1, item: 'coffee' }] })
  t.equal(ok.headers.get('ratelimit-limit'), '60')
  const missing = await call(undefined)
  t.equal(missing.status, 401)
  t.equal(missing.headers.get('www-authenticate'), 'ApiKey realm="orders-api", header="X-API-Key"')
  t.same(await missing.json(), { error: 'unauthorized', message: 'Authentication required' })
  const typo = (demoKey as string).slice(0, -1) + ((demoKey as string).endsWith('a') ? 'b' : 'a')
  t.same(await (await call(typo)).json(), { error: 'unauthorized', message: 'Invalid credentials' })

  // Issue a key limited to 2 requests a minute, with the admin script.
  const issued = admin(redisUrl, 'issue', 'carol', '--scopes', 'orders:read', '--rate', '2')
  t.match(issued.key, /^demo_live_/)
  t.equal((await call(issued.key)).status, 200)
  t.equal((await call(issued.key)).status, 200)
  const limited = await call(issued.key)
  t.equal(limited.status, 429)
  t.ok(Number(limited.headers.get('retry-after')) > 0)

  // A key without the scope: 403. A test-environment key: 401 on this live server.
  const noScope = admin(redisUrl, 'issue', 'dave')
  t.equal((await call(noScope.key)).status, 403)
  t.equal((await call(noScope.key, '/me')).status, 200)
  const testKey = admin(redisUrl, 'issue', 'erin', '--env', 'test', '--scopes', 'orders:read')
  t.equal((await call(testKey.key)).status, 401)

  // Rotate with a grace period: both keys work; revoke the old one: only the new one works.
  const rotated = admin(redisUrl, 'rotate', noScope.id, '--grace', '3600')
  t.equal((await call(noScope.key, '/me')).status, 200, 'old key during the grace')
  t.equal((await call(rotated.key, '/me')).status, 200, 'new key')
  admin(redisUrl, 'revoke', noScope.id)
  t.equal((await call(noScope.key, '/me')).status, 401, 'revoked')
  t.equal((await call(rotated.key, '/me')).status, 200)

  const listed = admin(redisUrl, 'list') as Array<Record<string, unknown>>
  t.equal(listed.length, 5, "demo, carol, dave, erin and dave's rotated key")
  t.notOk(JSON.stringify(listed).includes(issued.key), 'list never shows a key')
  t.ok(listed.every((r) => r.hash === undefined), 'nor a hash')

  // Stopping the server stops the redis-server it started.
  const port = Number(new URL(redisUrl).port)
  server.kill('SIGTERM')
  t.equal(await exited, 0)
  const deadline = Date.now() + 5000
  while (await portOpen(port) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(await portOpen(port), false, 'its redis-server is gone')
})
