import t from 'tap'
import type { Test } from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runFlow, startExample, statuses } from './helpers/example-process.js'
import { redisSkipReason } from './helpers/redis.js'

// The two browser examples started as a user starts them, and the curl flows they print pasted
// into a shell as they are, with the real curl and a cookie jar (test/browser-login.test.ts does
// the same with Chromium).

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'example-flow-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('examples/sessions: the printed curl flow — form login, protected page, CSRF-checked logout, the old cookie refused', { skip: redisSkipReason() }, async (t) => {
  const { flow, base } = await startExample(t, 'sessions', { REDIS_URL: '' })
  t.match(base, /^http:\/\/localhost:\d+$/)
  t.match(flow, /^curl -s -c jar -b jar -X POST http:\/\/localhost:\d+\/login /m, 'the login keeps its cookie in a jar')
  t.match(flow, new RegExp(`-X POST ${base}/logout -H 'Origin: ${base}'`), 'the logout sends the Origin header')
  const dir = tempDir(t)
  const out = await runFlow(flow, dir)
  t.same(statuses(out), [303, 200, 403, 303, 401], 'login, private page, logout without Origin refused, logout, old cookie refused')
  t.match(out, `HTTP 303 -> ${base}/private`)
  t.match(out, '<p id="greeting">Hello, Alice (via session)</p>')
  t.match(readFileSync(join(dir, 'jar'), 'utf8'), /\tsid\t/, 'the jar still holds the cookie that step 4 presented')
})

t.test('examples/oauth-login: the printed curl flow against the local provider — redirect, sign-in form, callback, logout', async (t) => {
  const { flow, base } = await startExample(t, 'oauth-login')
  t.match(flow, new RegExp(`-X POST ${base}/logout -H 'Origin: ${base}'`), 'the logout sends the Origin header')
  const out = await runFlow(flow, tempDir(t))
  t.same(statuses(out), [401, 200, 303, 401], 'not signed in, signed in via the provider, logout, old cookie refused')
  t.match(out, /^http:\/\/127\.0\.0\.1:\d+\/interaction\/\S+$/m, 'the provider\'s sign-in page, reached through the app\'s redirect')
  t.match(out, '<p id="greeting">Hello, Carol (via oauth2, provider local)</p>')
})

t.test('examples/oauth-login with a real provider: the browser step is said, and the rest of the flow is printed', async (t) => {
  const { curlFlow } = await import('../examples/oauth-login/flow.js')
  const lines = curlFlow('http://localhost:3000', 'google')
  t.ok(lines.some((l) => /Sign in with a browser at http:\/\/localhost:3000\/ : the google sign-in page is a browser's step/.test(l)))
  t.ok(lines.some((l) => l.startsWith("printf 'localhost\\tFALSE\\t/\\tFALSE\\t0\\tsid\\t%s\\n' 'PASTE-THE-SID-COOKIE-VALUE' > jar")), 'how to put the browser\'s cookie in the jar')
  t.ok(lines.some((l) => l === "curl -s -b jar -X POST http://localhost:3000/logout -H 'Origin: http://localhost:3000' -o /dev/null -w 'HTTP %{http_code} -> %{redirect_url}\\n'"))
})
