import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runFlow, startExample, statuses } from './helpers/example-process.js'

t.test('examples/basic-and-api-key over real HTTP (the README\'s first command)', async (t) => {
  const { curl, base, flow } = await startExample(t, 'basic-and-api-key')
  t.match(curl, /^curl -s -H 'X-API-Key: \S+' http:\/\/127\.0\.0\.1:\d+\/either -w ' HTTP %\{http_code\}\\n'$/, 'prints a ready curl line')
  const key = (/X-API-Key: (\S+)'/.exec(curl) as RegExpExecArray)[1] as string
  const basic = (u: string, p: string): string => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64')
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(base + path, { headers })
    return { status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.json() as Record<string, unknown> }
  }

  t.same((await get('/basic', { authorization: basic('john', 'hello') })).body, { hello: 'john', via: 'basic' })
  t.same((await get('/key', { 'x-api-key': key })).body, { hello: 'susan', via: 'apiKey' })
  t.same((await get('/either', { authorization: basic('susan', 'bye') })).body, { hello: 'susan', via: 'basic' })
  t.same((await get('/either', { 'x-api-key': key })).body, { hello: 'susan', via: 'apiKey' })

  const wrong = await get('/either', { authorization: basic('john', 'nope') })
  t.equal(wrong.status, 401)
  t.equal(wrong.challenge, 'Basic realm="example", charset="UTF-8", ApiKey realm="example", header="X-API-Key"')
  const unknown = await get('/either', { authorization: basic('nobody', 'hello') })
  t.same(unknown.body, wrong.body, 'unknown user and wrong password look the same')

  t.equal((await get('/basic', { 'x-api-key': key })).status, 401, '/basic does not take API keys')
  t.equal((await get('/key', { authorization: basic('john', 'hello') })).status, 401, '/key does not take Basic')
  t.equal((await get('/admin', { authorization: basic('john', 'hello') })).status, 200, 'john is admin')
  t.equal((await get('/admin', { 'x-api-key': key })).status, 403, 'susan is known but not admin')
  const typo = key.slice(0, -1) + (key.endsWith('a') ? 'b' : 'a')
  t.equal((await get('/key', { 'x-api-key': typo })).status, 401, 'a mistyped key is refused')
  t.equal((await get('/key?api_key=' + key)).status, 401, 'keys in the query string are off by default')

  // The printed lines, pasted into a shell as they are, with the real curl.
  const dir = mkdtempSync(join(tmpdir(), 'example-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = await runFlow(flow, dir)
  t.same(statuses(out), [200, 200, 200, 200, 403], 'key and password on /either, ana\'s non-ASCII password (UTF-8), john on /admin, susan refused there')
  t.match(out, '{"hello":"susan","via":"apiKey"} HTTP 200')
  t.match(out, '{"hello":"ana","via":"basic"} HTTP 200')
  t.match(out, /^HTTP\/1\.1 401 Unauthorized$/m, 'the wrong password: 401')
  t.match(out, /^www-authenticate: Basic realm="example", charset="UTF-8"\r$/m, 'with the Basic challenge')
  t.match(out, /^www-authenticate: ApiKey realm="example", header="X-API-Key"\r$/m, 'and the API-key one')
})
