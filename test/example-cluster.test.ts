import t from 'tap'
import type { Test } from 'tap'
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { portClosed, printedFlow, root, runFlow, startExample, statuses } from './helpers/example-process.js'
import { redisSkipReason } from './helpers/redis.js'

// The cluster example as a user runs it: one command starts a three-master Redis Cluster and
// two app instances (plain processes); the printed curl lines run as they are, with the real
// curl; stopping it (SIGTERM, or Ctrl-C to the whole process group) leaves no redis-server.
const skip = redisSkipReason()

/** What the example printed: the cluster's ports and the two instances' URLs. */
function addresses (stdout: string): { redisPorts: number[], a: string, b: string } {
  const nodes = /^Redis Cluster \(three masters\): (\S+)$/m.exec(stdout)?.[1] ?? ''
  const redisPorts = nodes.split(',').map((address) => Number(address.split(':')[1]))
  const a = /^instance A: (http:\/\/\S+)$/m.exec(stdout)?.[1] ?? ''
  const b = /^instance B: (http:\/\/\S+)$/m.exec(stdout)?.[1] ?? ''
  return { redisPorts, a, b }
}

/** PIDs of the redis-server processes serving one of `ports` (Redis sets its title to `redis-server <ip>:<port> …`). */
function redisServersOn (ports: number[]): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let cmdline: string
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ')
    } catch {
      continue // the process ended meanwhile
    }
    if (cmdline.includes('redis-server') && ports.some((port) => cmdline.includes(`127.0.0.1:${port}`) || cmdline.includes(`--port ${port} `))) pids.push(Number(entry))
  }
  return pids
}

/** Waits (at most 15 s) until no redis-server serves one of `ports`; resolves what is left. */
async function redisServersGone (ports: number[]): Promise<number[]> {
  const deadline = Date.now() + 15_000
  let left = redisServersOn(ports)
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100)
    left = redisServersOn(ports)
  }
  return left
}

async function allClosed (t: Test, redisPorts: number[], urls: string[]): Promise<void> {
  t.same(await redisServersGone(redisPorts), [], 'no redis-server process left')
  for (const port of redisPorts) t.ok(await portClosed(port), `nothing listens on the cluster port ${port}`)
  for (const url of urls) t.ok(await portClosed(Number(new URL(url).port)), `the instance on ${url} stopped`)
}

t.test('examples/cluster: a login on A works on B, a revocation on B holds on A, a session from A works on B', { skip }, async (t) => {
  const { flow, stdout, child } = await startExample(t, 'cluster')
  const { redisPorts, a, b } = addresses(stdout)
  t.equal(redisPorts.length, 3, 'three masters')
  t.ok(redisServersOn(redisPorts).length === 3, 'three redis-server processes')
  t.not(a, b, 'two instances on different ports')
  t.match(flow, `curl -s -u alice:wonderland -X POST ${a}/tokens`, 'the token comes from instance A')
  t.match(flow, `curl -s -X POST ${b}/tokens/revoke`, 'the revocation goes to instance B')

  const dir = mkdtempSync(join(tmpdir(), 'example-cluster-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = await runFlow(flow, dir)
  t.same(statuses(out), [200, 200, 401, 200, 200], 'B accepts A\'s token; B revokes it; A refuses it; A starts a session; B accepts it')
  t.match(out, '{"instance":"B","user":"Alice","method":"token"} HTTP 200')
  t.match(out, /"code":"FST_MULTIAUTH_CREDENTIALS_INVALID".* HTTP 401/)
  t.match(out, '{"instance":"A","user":"Alice"} HTTP 200')
  t.match(out, '{"instance":"B","user":"Alice","method":"session"} HTTP 200')

  // The state is in the cluster: the revocation (hash tag {u:alice}) and the session, found by
  // asking every master.
  const { stdout: keys } = await promisify(execFile)('redis-cli', ['--cluster', 'call', `127.0.0.1:${redisPorts[0]}`, 'keys', 'multiauth:*'], { encoding: 'utf8', timeout: 10_000 })
  t.match(keys, /multiauth:tok:\{u:alice\}:rv:[0-9a-f-]{36}/, 'the revocation is a key in the cluster')
  t.match(keys, /multiauth:sess:\S+/, 'so is the session')

  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: exit code 0')
  await allClosed(t, redisPorts, [a, b])
})

t.test('examples/cluster: Ctrl-C on `npm run example -- cluster` stops the instances and the cluster', { skip }, async (t) => {
  // A terminal's Ctrl-C sends SIGINT to the whole foreground process group: npm, its shell,
  // examples/run.mjs, the launcher, the instances and the redis-servers all get it at once.
  const child = spawn('npm', ['run', 'example', '--', 'cluster'], { cwd: root, env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const group = child.pid as number
  t.teardown(() => { try { process.kill(-group, 'SIGKILL') } catch {} })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no curl flow in 90 s\n${stdout}\n${stderr}`)), 90_000)
    const early = (code: number | null): void => { clearTimeout(timer); reject(new Error(`exited with ${String(code)}\n${stderr}`)) }
    child.once('exit', early)
    const onData = (chunk: Buffer): void => {
      stdout += chunk.toString()
      if (printedFlow(stdout) === undefined) return
      // Only this listener and `early` go: an 'exit' listener added later (the test's own) must
      // stay, also when the example prints more (its shutdown lines) after the flow. Removing
      // every 'exit' listener on each later chunk lost it: the test then never ended ("test unfinished").
      clearTimeout(timer)
      child.off('exit', early)
      child.stdout.off('data', onData)
      child.stdout.resume()
      resolve()
    }
    child.stdout.on('data', onData)
  })
  const { redisPorts, a, b } = addresses(stdout)
  t.equal(redisServersOn(redisPorts).length, 3, 'the cluster runs')
  const exited = new Promise((resolve) => child.once('exit', resolve))
  process.kill(-group, 'SIGINT')
  await exited
  await allClosed(t, redisPorts, [a, b])
})
