import t from 'tap'
import { runFlow, startExample, statuses } from './helpers/example-process.js'

// Basic with hashed passwords (`Hello, <user>!`) as a real process over real HTTP.

const basic = (user: string, password: string): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')

t.test('examples/basic-hashed over real HTTP', async (t) => {
  const { base, curl, flow } = await startExample(t, 'basic-hashed')
  t.match(curl, /^curl -s -u john:hello http:\/\/127\.0\.0\.1:\d+\/ -w ' HTTP %\{http_code\}\\n'$/, 'prints a ready curl line')
  const out = await runFlow(flow, process.cwd())
  t.same(statuses(out), [200, 401], 'the printed curl lines, run as printed')
  t.match(out, 'Hello, john! HTTP 200')

  for (const [user, password] of [['john', 'hello'], ['susan', 'bye']]) {
    const res = await fetch(`${base}/`, { headers: { authorization: basic(user as string, password as string) } })
    t.equal(res.status, 200)
    t.equal(await res.text(), `Hello, ${user as string}!`)
  }
  for (const authorization of [basic('john', 'bye'), basic('nobody', 'hello'), undefined]) {
    const res = await fetch(`${base}/`, { headers: authorization === undefined ? {} : { authorization } })
    t.equal(res.status, 401, 'wrong password, unknown user or no credentials: 401')
    t.equal(res.headers.get('www-authenticate'), 'Basic realm="basic-hashed", charset="UTF-8"', 'with the Basic challenge')
  }
  const malformed = await fetch(`${base}/`, { headers: { authorization: 'Basic !!!' } })
  t.equal(malformed.status, 400, 'undecodable credentials: 400')
})
