import t from 'tap'
import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import { startExample } from './helpers/example-process.js'

// Real clients against real example processes, over real HTTP: Python `requests` (Debian's
// python3-requests) and curl. `requests` sends a `str` Basic password as ISO-8859-1, curl as
// the terminal's bytes (UTF-8): the same user with the password "áéíóú" must log in with both.
// Before the ISO-8859-1 fallback (RFC 7617 Appendix B) the requests login was a 400
// "credentials are not valid UTF-8".
//
// With CI=true a missing client fails the run (.ci/run installs both); locally the tests are
// skipped with a loud notice, like the Redis tests.

const pexec = promisify(execFile)

/** Debian's /usr/bin/python3 first, then any python3 on PATH, whichever can `import requests`. */
function findPython (): string | undefined {
  return ['/usr/bin/python3', 'python3'].find((cmd) => spawnSync(cmd, ['-c', 'import requests'], { stdio: 'ignore', timeout: 30_000 }).status === 0)
}

function skipReason (what: string, found: boolean, install: string): string | false {
  if (found) return false
  if (process.env.CI === 'true') throw new Error(`${what} is not installed, and CI=true requires the real-client tests to run (${install})`)
  process.stderr.write(`\n*** ${what} not found: SKIPPING the real-client tests with it. Install it with \`${install}\`. ***\n`)
  return `${what} not installed`
}

const python = findPython()
const curlFound = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0
const skipPython = skipReason('python3 with requests', python !== undefined, 'apt-get install -y python3-requests')
const skipCurl = skipReason('curl', curlFound, 'apt-get install -y curl')

/** Runs a Python snippet that prints one JSON document; `argv` reaches it as sys.argv[1:]. */
async function py (code: string, ...argv: string[]): Promise<any> {
  const { stdout } = await pexec(python as string, ['-c', code, ...argv], { timeout: 60_000, encoding: 'utf8' })
  return JSON.parse(stdout)
}

async function curl (...args: string[]): Promise<string> {
  const { stdout } = await pexec('curl', ['-s', ...args], { timeout: 60_000, encoding: 'utf8' })
  return stdout
}

t.test('main example (Basic with argon2id, API keys)', async (t) => {
  const { base, curl: firstCurl } = await startExample(t, 'basic-and-api-key')
  const key = (/X-API-Key: (\S+)'/.exec(firstCurl) as RegExpExecArray)[1] as string

  t.test('Python requests', { skip: skipPython }, async (t) => {
    const out = await py(`
import json, sys, requests
from requests.auth import _basic_auth_str
base, key = sys.argv[1], sys.argv[2]
def call(path, **kw):
    r = requests.get(base + path, timeout=30, **kw)
    return [r.status_code, r.json()]
print(json.dumps({
    'header': _basic_auth_str('ana', 'áéíóú'),
    'ana': call('/basic', auth=('ana', 'áéíóú')),
    'ana_wrong': call('/basic', auth=('ana', 'aeiou')),
    'john': call('/either', auth=('john', 'hello')),
    'key': call('/key', headers={'X-API-Key': key}),
    'admin': call('/admin', headers={'X-API-Key': key}),
}))`, base, key)
    const sent = Buffer.from((out.header as string).slice('Basic '.length), 'base64')
    t.equal(sent.toString('hex'), Buffer.from('ana:áéíóú', 'latin1').toString('hex'), 'requests really sends ISO-8859-1 bytes (not UTF-8)')
    t.same(out.ana, [200, { hello: 'ana', via: 'basic' }], 'the right non-ASCII password, sent as ISO-8859-1, logs in')
    t.equal(out.ana_wrong[0], 401, 'a wrong one does not')
    t.same(out.john, [200, { hello: 'john', via: 'basic' }])
    t.same(out.key, [200, { hello: 'susan', via: 'apiKey' }])
    t.equal(out.admin[0], 403)
  })

  t.test('curl', { skip: skipCurl }, async (t) => {
    t.equal(await curl('-u', 'ana:áéíóú', `${base}/basic`), '{"hello":"ana","via":"basic"}', 'the same password, sent as UTF-8')
    t.equal(await curl('-u', 'ana:aeiou', '-o', '/dev/null', '-w', '%{http_code}', `${base}/basic`), '401')
    t.equal(await curl('-H', `X-API-Key: ${key}`, `${base}/either`), '{"hello":"susan","via":"apiKey"}')
  })
})

t.test('tokens example (JSON login, Bearer, refresh, revoke, a token from Basic on POST /api/v1/tokens/)', async (t) => {
  const { base } = await startExample(t, 'tokens', { JWT_SECRET: '' })

  t.test('Python requests', { skip: skipPython }, async (t) => {
    const out = await py(`
import json, sys, requests
base = sys.argv[1]
s = requests.Session()
login = s.post(base + '/login', json={'username': 'alice@example.com', 'password': 'wonderland'}, timeout=30).json()
bearer = {'Authorization': 'Bearer ' + login['access_token']}
call = s.get(base + '/protected', headers=bearer, timeout=30)
refresh = s.post(base + '/api/v1/tokens/refresh', json={'refresh_token': login['refresh_token']}, timeout=30)
reuse = s.post(base + '/api/v1/tokens/refresh', json={'refresh_token': login['refresh_token']}, timeout=30)
revoke = s.post(base + '/api/v1/tokens/revoke', headers=bearer, timeout=30)
after = s.get(base + '/protected', headers=bearer, timeout=30)
basic_mint = s.post(base + '/api/v1/tokens/', auth=('alice@example.com', 'wonderland'), timeout=30)
print(json.dumps({
    'call': [call.status_code, call.json()], 'refresh': refresh.status_code, 'reuse': reuse.status_code,
    'revoke': revoke.status_code, 'after': after.status_code, 'basic_mint': [basic_mint.status_code, sorted(basic_mint.json())],
}))`, base)
    t.same(out.call, [200, { logged_in_as: 'alice@example.com', via: 'token' }])
    t.equal(out.refresh, 200)
    t.equal(out.reuse, 400, 'a reused refresh token is refused (invalid_grant)')
    t.equal(out.revoke, 200, 'RFC 7009')
    t.equal(out.after, 401)
    t.same(out.basic_mint, [200, ['access_token', 'expiration', 'expires_in', 'refresh_token', 'token', 'token_type']])
  })

  t.test('curl', { skip: skipCurl }, async (t) => {
    const login = JSON.parse(await curl('-X', 'POST', `${base}/login`, '-H', 'content-type: application/json', '-d', '{"username":"alice@example.com","password":"wonderland"}'))
    t.equal(await curl(`${base}/protected`, '-H', `Authorization: Bearer ${login.access_token as string}`), '{"logged_in_as":"alice@example.com","via":"token"}')
    const minted = JSON.parse(await curl('-u', 'alice@example.com:wonderland', '-X', 'POST', `${base}/api/v1/tokens/`))
    t.equal(minted.expiration, 3600)
    t.equal(await curl('-u', `${minted.token as string}:`, `${base}/protected`), '{"logged_in_as":"alice@example.com","via":"token"}', 'the token as the Basic user name')
  })
})
