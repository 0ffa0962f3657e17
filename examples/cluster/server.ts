// Scale-out on one machine: a three-master Redis Cluster and two instances of one application
// (app.ts), all plain processes. A token from instance A works on instance B, a revocation on B
// holds on A, a session started on A is valid on B: the instances share nothing but Redis.
//
//   npm run example -- cluster     (or: npx tsx examples/cluster/server.ts)
//
// Needs redis-server and redis-cli (apt-get install redis-server, brew install redis). Instance A
// listens on PORT (default 3000), B on PORT + 1; PORT=0 gives both a free port. Ctrl-C (or a
// SIGTERM) stops both instances and every redis-server it started. Prints the curl lines to try.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { SetupError, startLocalCluster } from './local-cluster.js'

const cluster = await startLocalCluster().catch((err: unknown) => {
  if (!(err instanceof SetupError)) throw err
  console.error(`cluster example: ${err.message}`)
  process.exit(1)
})
process.once('exit', cluster.kill) // whatever happens below, no redis-server outlives this process

// Every instance needs the same secrets: tokens and session cookies are checked on any of them.
const env = {
  REDIS_CLUSTER: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(','),
  JWT_SECRET: process.env.JWT_SECRET || randomBytes(32).toString('base64url'),
  SESSION_SECRET: process.env.SESSION_SECRET || randomBytes(32).toString('base64url')
}
const app = fileURLToPath(new URL('app.ts', import.meta.url))
const children = new Set<ChildProcess>()
process.once('exit', () => { for (const child of children) child.kill('SIGKILL') })

let stopping = false
async function stop (code: number): Promise<never> {
  if (!stopping) {
    stopping = true
    await Promise.all([...children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }))
    await cluster.stop()
    process.exit(code)
  }
  return await new Promise<never>(() => {}) // a second signal while stopping: the first one finishes
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => { void stop(0) })

/** Starts one instance; resolves its URL once it listens. */
async function instance (name: string, port: number): Promise<string> {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), app], {
    env: { ...process.env, ...env, INSTANCE: name, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  children.add(child)
  child.once('exit', (code, signal) => {
    children.delete(child)
    if (stopping) return
    console.error(`cluster example: instance ${name} stopped (${signal ?? `exit code ${String(code)}`}); stopping everything`)
    void stop(1)
  })
  return await new Promise((resolve) => {
    let buffered = ''
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop() as string
      for (const line of lines) {
        const listening = /^instance \S+ listening on (http:\/\/\S+)$/.exec(line)
        if (listening !== null) resolve(listening[1] as string)
        else console.log(`[${name}] ${line}`) // the instance's log
      }
    })
  })
}

const port = Number(process.env.PORT ?? 3000)
const [a, b] = await Promise.all([instance('A', port), instance('B', port === 0 ? 0 : port + 1)])

const bearer = '-H "Authorization: Bearer $TOKEN"'
const status = "-w ' HTTP %{http_code}\\n'"
console.log(`Redis Cluster (three masters): ${env.REDIS_CLUSTER}`)
console.log(`  the plugin's keys, node by node: redis-cli --cluster call ${env.REDIS_CLUSTER.split(',')[0]} keys 'multiauth:*'`)
console.log(`instance A: ${a}`)
console.log(`instance B: ${b}`)
console.log('User alice, password wonderland. Paste these lines, in order, into a POSIX shell (sh, bash, zsh):')
console.log('# 1. Log in on instance A with Basic: a bearer token')
console.log(`TOKEN=$(curl -s -u alice:wonderland -X POST ${a}/tokens | sed -E 's/.*"token":"([^"]+)".*/\\1/')`)
console.log('# 2. Use it on instance B')
console.log(`curl -s ${b}/me ${bearer} ${status}`)
console.log('# 3. Revoke it on instance B (log out): 200')
console.log(`curl -s -X POST ${b}/tokens/revoke ${bearer} -w 'HTTP %{http_code}\\n'`)
console.log('# 4. Instance A refuses it now: the revocation is in the cluster')
console.log(`curl -s ${a}/me ${bearer} ${status}`)
console.log('# 5. A session: log in on instance A (the cookie goes to the jar file), use it on instance B')
console.log(`curl -s -u alice:wonderland -c jar -X POST ${a}/login ${status}`)
console.log(`curl -s -b jar ${b}/me ${status}`)
console.log()
console.log('Ctrl-C stops both instances and the cluster.')
