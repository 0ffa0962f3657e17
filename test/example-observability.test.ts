import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { runFlow, startExample, statuses } from './helpers/example-process.js'

/** The samples of a Prometheus text exposition, by `name{label="value",…}` with the labels sorted. */
function parseMetrics (text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels = m[2] === undefined ? '' : [...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort().join(',')
    samples.set(`${m[1]}{${labels}}`, Number(m[3]))
  }
  return samples
}

/** The key `parseMetrics` files a sample under. */
function sample (name: string, labels: Record<string, string> = {}): string {
  return `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',')}}`
}

interface AuditLine { level: number, audit: true, event: string, payload: Record<string, unknown> }

/** Collects the audit lines the process writes from now on (one JSON object per line, `"audit":true`). */
function auditLines (stdout: Readable): { lines: AuditLine[], until: (done: (lines: AuditLine[]) => boolean, what: string) => Promise<void> } {
  const lines: AuditLine[] = []
  let partial = ''
  const waiters = new Set<() => void>()
  stdout.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString()
    const complete = text.split('\n')
    partial = complete.pop() ?? ''
    for (const line of complete) {
      if (!line.startsWith('{')) continue
      const parsed = JSON.parse(line) as Partial<AuditLine>
      if (parsed.audit === true) lines.push(parsed as AuditLine)
    }
    for (const wake of waiters) wake()
  })
  const until = async (done: (lines: AuditLine[]) => boolean, what: string): Promise<void> => {
    if (done(lines)) return
    await new Promise<void>((resolve, reject) => {
      // Bounded, but by a margin: the lines are written before the responses they belong to are sent.
      const timer = setTimeout(() => { waiters.delete(wake); reject(new Error(`no ${what} within 20 s; audit lines so far:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)) }, 20_000)
      const wake = (): void => { if (done(lines)) { clearTimeout(timer); waiters.delete(wake); resolve() } }
      waiters.add(wake)
    })
  }
  return { lines, until }
}

t.test('examples/observability: each event over real HTTP, counted at /metrics and written to the audit log', async (t) => {
  const { base, flow, child } = await startExample(t, 'observability', { JWT_SECRET: '', SESSION_SECRET: '' })
  const audit = auditLines(child.stdout as Readable)

  // The printed flow, pasted into a shell as it is, with the real curl.
  const dir = mkdtempSync(join(tmpdir(), 'example-observability-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = await runFlow(flow, dir)
  t.same(statuses(out), [
    200, 401, 401, // authenticated (basic), refused: missing, wrong-password
    200, // authenticated (apiKey), api-key:used
    403, // forbidden: role
    401, 401, 401, 429, // three guesses refused, the fourth rate-limited
    200, // the access token on /admin
    200, 400, // refreshed, refresh-reused
    200, 401, // revoked, then refused
    200, 200, 403, 200 // session login, session in use, cross-site POST forbidden, logout
  ], 'every line of the flow answered as its comment says')
  t.match(out, '{"user":"Alice","via":"basic"} HTTP 200')
  t.match(out, '{"user":"Bob","via":"apiKey"} HTTP 200')
  t.match(out, '{"admin":"Alice"} HTTP 200', 'the access token from POST /tokens')
  t.match(out, /"error":"invalid_grant"[^\n]* HTTP 400/, 'the reused refresh token')
  t.match(out, '{"user":"Alice","via":"session"} HTTP 200')
  t.match(out, /^multiauth_refresh_reuse_total 1$/m, 'the flow ends with the metrics')

  const response = await fetch(`${base}/metrics`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  const metrics = parseMetrics(await response.text())
  const value = (name: string, labels: Record<string, string> = {}): number | undefined => metrics.get(sample(name, labels))

  // One count per guard run, by outcome and the method that admitted the request.
  const runs: Array<[string, string, number]> = [
    ['basic', 'authenticated', 3], // alice on /me, POST /tokens, POST /login
    ['apiKey', 'authenticated', 1],
    ['token', 'authenticated', 2], // /admin, POST /tokens/revoke
    ['session', 'authenticated', 2], // /me, the logout with Origin
    ['none', 'refused', 6], // missing, wrong password, three guesses, the revoked token
    ['basic', 'forbidden', 1], // bob on /admin
    ['none', 'forbidden', 1], // the logout without Origin: the session cookie may not be used cross-site, so no method admitted it
    ['none', 'rate-limited', 1]
  ]
  for (const [method, outcome, count] of runs) {
    t.equal(value('multiauth_authentications_total', { method, outcome }), count, `authentications{method=${method},outcome=${outcome}}`)
    t.equal(value('multiauth_authentication_duration_seconds_count', { method, outcome }), count, `  and as many latency observations`)
  }
  const allRuns = [...metrics].filter(([k]) => k.startsWith('multiauth_authentications_total{')).reduce((sum, [, v]) => sum + v, 0)
  t.equal(allRuns, runs.reduce((sum, [, , count]) => sum + count, 0), 'no other guard runs were counted')
  t.ok((value('multiauth_authentication_duration_seconds_sum', { method: 'basic', outcome: 'authenticated' }) ?? 0) > 0, 'latencies are observed in seconds')

  t.equal(value('multiauth_refusals_total', { method: 'none', reason: 'missing' }), 1)
  t.equal(value('multiauth_refusals_total', { method: 'basic', reason: 'wrong-password' }), 1)
  t.equal(value('multiauth_refusals_total', { method: 'basic', reason: 'unknown-user' }), 3, 'the guesses at "admin", a user that does not exist')
  t.equal(value('multiauth_refusals_total', { method: 'token', reason: 'revoked' }), 1)
  t.equal(value('multiauth_refusals_total', { method: 'session', reason: 'cross-site' }), 1, 'the logout without Origin')
  const allRefusals = [...metrics].filter(([k]) => k.startsWith('multiauth_refusals_total{')).reduce((sum, [, v]) => sum + v, 0)
  t.equal(allRefusals, 7, 'no other refusals')
  t.equal(value('multiauth_rate_limited_total', { budget: 'failures-per-user' }), 1)
  t.equal(value('multiauth_refresh_reuse_total'), 1)

  // The audit log: one line per event, in the process's output, none holding a credential.
  const expected: Record<string, number> = {
    'authenticated': 8, // Basic on /me, /tokens and /login; the API key; the token on /admin and /tokens/revoke; the session on /me and /logout
    'refused': 7, // missing, wrong-password, three unknown-user, revoked, cross-site
    'forbidden': 2,
    'rate-limited': 1,
    'api-key:used': 1,
    'token:issued': 1, // POST /tokens (a refresh is token:refreshed)
    'token:refreshed': 1,
    'token:refresh-reused': 1,
    'token:revoked': 1,
    'session:login': 1,
    'session:logout': 1
  }
  const counts = (lines: AuditLine[]): Record<string, number> => {
    const by: Record<string, number> = {}
    for (const line of lines) by[line.event] = (by[line.event] ?? 0) + 1
    return by
  }
  await audit.until((lines) => Object.entries(expected).every(([event, n]) => (counts(lines)[event] ?? 0) >= n), 'audit line for every event of the flow')
  t.same(counts(audit.lines), expected, 'one audit line per event, and no other')
  for (const line of audit.lines) {
    t.equal(line.level, 30, `${line.event}: written at info`)
    t.type(line.payload, 'object', `${line.event}: with its payload`)
  }
  const refused = audit.lines.filter((l) => l.event === 'refused').map((l) => l.payload)
  t.match(refused, [{ reason: 'missing', route: '/me' }, { method: 'basic', reason: 'wrong-password', route: '/me' }], 'refused payloads say why, and on which route')
  t.match(audit.lines.filter((l) => l.event === 'forbidden').map((l) => l.payload), [
    { method: 'basic', userId: 'bob', missing: 'role', route: '/admin' },
    { method: 'session', missing: 'same-site', route: '/logout' }
  ])
  t.match(audit.lines.find((l) => l.event === 'api-key:used')?.payload, { keyId: /^[A-Za-z0-9]+$/, userId: 'bob', environment: 'live' })
  t.match(audit.lines.find((l) => l.event === 'rate-limited')?.payload, { budget: 'failures-per-user', retryAfter: Number })

  const key = /^KEY=(\S+)$/m.exec(flow)?.[1]
  t.match(key, /^demo_live_/, 'the flow prints the API key')
  const everything = audit.lines.map((l) => JSON.stringify(l)).join('\n')
  const secrets: Array<[string, string]> = [
    ['a password', 'wonderland'], ['a password', 'builder'], ['a guessed password', 'guess'], ['the API key', key ?? 'KEY'], ['a JWT', 'eyJ'], ['a session cookie', 'sid=']
  ]
  for (const [what, secret] of secrets) {
    t.notOk(everything.includes(secret), `no audit line contains ${what}`)
  }
})
