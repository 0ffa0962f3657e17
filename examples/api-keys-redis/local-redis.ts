// Starts a throwaway redis-server (no persistence, loopback only) when no REDIS_URL is given.
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { SetupError } from './keys.js'

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export async function startLocalRedis (): Promise<{ url: string, stop: () => void }> {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const failed = new Promise<never>((_resolve, reject) => {
    child.once('error', (err) => reject(new SetupError((err as NodeJS.ErrnoException).code === 'ENOENT'
      ? 'needs Redis, and redis-server is not installed: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL=redis://host:port to use a running Redis'
      : `could not start redis-server (${err.message}); install it (apt-get install redis-server) or set REDIS_URL=redis://host:port`)))
  })
  failed.catch(() => {}) // raced below; never an unhandled rejection
  const url = `redis://127.0.0.1:${port}`
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  try {
    for (let i = 0; i < 200; i++) { // at most ~10 s
      const up = await Promise.race([probe.connect().then(() => true, () => false), failed])
      if (up) break
      await sleep(50)
    }
    await probe.ping().catch((err: Error) => { throw new SetupError(`redis-server did not answer in 10 s (${err.message}); set REDIS_URL=redis://host:port to use a running Redis`) })
  } finally {
    probe.disconnect()
  }
  const stop = (): void => { child.kill('SIGTERM') }
  process.once('exit', stop)
  return { url, stop }
}
