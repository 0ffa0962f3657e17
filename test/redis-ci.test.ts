import t from 'tap'
import { spawnSync } from 'node:child_process'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

// With CI=true the Redis tests must run: a missing redis-server fails the run instead of skipping.
const helper = new URL('./helpers/redis.ts', import.meta.url).href
const probe = `import(${JSON.stringify(helper)}).then((m) => { console.log(JSON.stringify(m.redisSkipReason())) })`
const cwd = dirname(dirname(fileURLToPath(import.meta.url)))

function run (env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, ['--import', 'tsx', '-e', probe], { cwd, env, encoding: 'utf8', timeout: 30_000 })
}

t.test('CI=true and no redis-server: the Redis tests fail loudly, they are not skipped', async (t) => {
  const res = run({ ...process.env, CI: 'true', PATH: '/nonexistent' })
  t.not(res.status, 0)
  t.match(res.stderr, /redis-server is not installed, and CI=true requires the Redis tests to run/)
})

t.test('CI=true with redis-server installed: not skipped', { skip: spawnSync('redis-server', ['--version']).status !== 0 && 'redis-server not installed' }, async (t) => {
  const res = run({ ...process.env, CI: 'true' })
  t.equal(res.status, 0, res.stderr)
  t.equal(res.stdout.trim(), 'false', 'redisSkipReason() is false: the Redis tests run')
})

t.test('locally without redis-server: skipped with a loud message', async (t) => {
  const res = run({ ...process.env, CI: '', PATH: '/nonexistent' })
  t.equal(res.status, 0, res.stderr)
  t.equal(res.stdout.trim(), '"redis-server not installed"')
  t.match(res.stderr, /SKIPPING Redis tests/)
})
