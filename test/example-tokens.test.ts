import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const server = fileURLToPath(new URL('../examples/tokens/server.ts', import.meta.url))

/** Starts the example as a real process on a free port; resolves the curl line it prints. */
async function start (t: Test): Promise<{ base: string, curl: string }> {
  const { JWT_SECRET: _ignored, ...env } = process.env
  const child = spawn(process.execPath, ['--import', 'tsx', server], {
    env: { ...env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  })
  let out = ''
  let err = ''
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`example did not start in 30 s\n${out}\n${err}`)), 30_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`example exited with ${String(code)}\n${err}`)) })
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const match = /^try: (curl .* (http:\/\/127\.0\.0\.1:\d+)\/api\/v1\/tokens\/)$/m.exec(out)
      if (match !== null) {
        clearTimeout(timer)
        resolve({ curl: match[1] as string, base: match[2] as string })
      }
    })
  })
}

t.test('examples/tokens over real HTTP', async (t) => {
  const { base, curl } = await start(t)
  t.match(curl, /^curl -s -u alice@example\.com:wonderland -X POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/tokens\/$/, 'prints a ready curl line')
  const basic = 'Basic ' + Buffer.from('alice@example.com:wonderland').toString('base64')

  // Seed 2: POST /api/v1/tokens/ with Basic
  const minted = await fetch(`${base}/api/v1/tokens/`, { method: 'POST', headers: { authorization: basic } })
  t.equal(minted.status, 200)
  const { token, expiration, refresh_token: refreshToken } = await minted.json() as { token: string, expiration: number, refresh_token: string }
  t.equal(expiration, 3600)
  t.type(refreshToken, 'string')

  const refused = await fetch(`${base}/api/v1/tokens/`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
  t.equal(refused.status, 401, 'a token cannot mint a token')
  t.same(await refused.json(), { error: 'unauthorized', message: 'Authentication required' }, 'the seed\'s JSON error shape')

  const viaBasicToken = await fetch(`${base}/protected`, { headers: { authorization: 'Basic ' + Buffer.from(`${token}:`).toString('base64') } })
  t.same(await viaBasicToken.json(), { logged_in_as: 'alice@example.com', via: 'token' }, 'seed 2: token as the Basic user-id')

  // Seed 1: POST /login, then GET /protected with Bearer
  const login = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice@example.com', password: 'wonderland' }) })
  t.equal(login.status, 200)
  const { access_token: accessToken } = await login.json() as { access_token: string }
  const protectedRes = await fetch(`${base}/protected`, { headers: { authorization: `Bearer ${accessToken}` } })
  t.equal(protectedRes.status, 200)
  t.same(await protectedRes.json(), { logged_in_as: 'alice@example.com', via: 'token' })

  const wrong = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice@example.com', password: 'nope' }) })
  t.equal(wrong.status, 401)
  const anonymous = await fetch(`${base}/protected`)
  t.equal(anonymous.status, 401)
  t.match(anonymous.headers.get('www-authenticate') ?? '', /Bearer realm="example"/)

  // Refresh, then logout
  const refreshed = await fetch(`${base}/api/v1/tokens/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: refreshToken }) })
  t.equal(refreshed.status, 200)
  const out = await fetch(`${base}/api/v1/tokens/revoke`, { method: 'POST', headers: { authorization: `Bearer ${accessToken}` } })
  t.equal(out.status, 200)
  t.equal((await fetch(`${base}/protected`, { headers: { authorization: `Bearer ${accessToken}` } })).status, 401, 'logged out')
})
