// Attack cases against HTTP Basic (RFC 7617) and the Authorization header (RFC 7235),
// through inject and, where Node's HTTP parser matters, over a real socket.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { hashPassword } from '../../src/index.js'
import type { MultiauthOptions } from '../../src/index.js'
import { basicHeader, buildApp } from '../helpers/app.js'
import { rawRequest } from '../helpers/raw-http.js'

const ALICE = { id: 'alice' }
const b64 = (s: string | Buffer): string => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s).toString('base64')

let calls: Array<[string, string]> = []
async function basicApp (extra: Partial<MultiauthOptions> = {}): Promise<FastifyInstance> {
  const app = await buildApp({
    basic: {
      verify: async (username, password) => {
        calls.push([username, password])
        return username === 'alice' && password === 'pa:ss word' ? ALICE : null
      }
    },
    ...extra
  })
  app.get('/r', { onRequest: app.authGuard(['basic']) }, async (request) => ({ user: request.auth?.user ?? null }))
  await app.ready()
  return app
}

async function status (app: FastifyInstance, authorization: string | string[]): Promise<{ statusCode: number, code?: string, challenge?: string | string[] }> {
  const res = await app.inject({ url: '/r', headers: { authorization: authorization as string } })
  return { statusCode: res.statusCode, code: res.json().code, challenge: res.headers['www-authenticate'] as string | undefined }
}

t.beforeEach(() => { calls = [] })

t.test('[RFC 7617 §2] valid credentials, a colon inside the password, pass (the first colon splits)', async (t) => {
  const app = await basicApp()
  t.equal((await status(app, basicHeader('alice', 'pa:ss word'))).statusCode, 200)
  t.same(calls, [['alice', 'pa:ss word']])
})

t.test('[RFC 7617 §2] empty username is refused with 401 and the callback is not asked', async (t) => {
  const app = await basicApp()
  const res = await status(app, 'Basic ' + b64(':pa:ss word'))
  t.equal(res.statusCode, 401)
  t.same(calls, [], 'verify not called for an empty user-id')
})

for (const [label, user, pass] of [
  ['NUL in the password', 'alice', 'pa\u0000ss'],
  ['NUL in the username', 'al\u0000ice', 'pa:ss word'],
  ['CR LF in the password', 'alice', 'pa\r\nss'],
  ['DEL in the username', 'ali\u007fce', 'x'],
  ['C1 control (U+0085) in the password', 'alice', 'pa\u0085ss'],
  ['TAB in the username', 'al\tice', 'x']
] as const) {
  t.test(`[RFC 7617 §2 "MUST NOT contain control characters"] ${label} → 400`, async (t) => {
    const app = await basicApp()
    const res = await status(app, basicHeader(user, pass))
    t.equal(res.statusCode, 400)
    t.equal(res.code, 'FST_MULTIAUTH_BAD_REQUEST')
    t.same(calls, [])
  })
}

t.test('[RFC 7617 §2] no colon in the decoded credentials → 400', async (t) => {
  const app = await basicApp()
  t.equal((await status(app, 'Basic ' + b64('alicepa'))).statusCode, 400)
  t.same(calls, [])
})

t.test('[RFC 7617 §2.1, Appendix B] bytes that are not UTF-8 are read as ISO-8859-1; a C1 control they spell is still 400', async (t) => {
  const app = await basicApp()
  // Each was a 400 "not valid UTF-8" before the ISO-8859-1 fallback; now they reach verify as Latin-1 text.
  for (const bytes of [[0x61, 0x3a, 0xc0, 0xaf], [0xff, 0x3a, 0x61]]) {
    t.equal((await status(app, 'Basic ' + b64(Buffer.from(bytes)))).statusCode, 401, `${Buffer.from(bytes).toString('hex')}: decoded, then refused by verify`)
  }
  t.same(calls, [['a', '\u00c0\u00af'], ['\u00ff', 'a']], 'verify saw the ISO-8859-1 reading')
  // A lone continuation byte 0x80 and a UTF-16 surrogate (ed a0 80) are not UTF-8; as Latin-1 they hold U+0080, a C1 control.
  calls = []
  for (const bytes of [[0x61, 0x3a, 0x80], [0x61, 0x3a, 0xed, 0xa0, 0x80]]) {
    t.equal((await status(app, 'Basic ' + b64(Buffer.from(bytes)))).statusCode, 400, Buffer.from(bytes).toString('hex'))
  }
  t.same(calls, [])
})

t.test('[RFC 7617 §2, RFC 4648 §3.5 canonical encoding] non-canonical base64 → 400', async (t) => {
  const app = await basicApp()
  const good = b64('alice:pa:ss word')
  const variants = [
    good.replace(/=+$/, ''), // padding dropped
    good + '=', // extra padding
    good.slice(0, 4) + ' ' + good.slice(4), // embedded space
    good.replace(/\+/g, '-').replace(/\//g, '_') + '-_', // base64url alphabet
    good + '!!', // junk Node's decoder would skip
    'YWxpY2U6eA===', // too much padding ("alice:x")
    'YWxpY2U6eB==' // non-zero trailing bits: Node decodes it to "alice:x" too
  ]
  for (const v of variants) t.equal((await status(app, 'Basic ' + v)).statusCode, 400, JSON.stringify(v))
  t.same(calls, [])
})

t.test('[RFC 7235 §2.1] the scheme is case-insensitive: basic, BASIC, bAsIc are all Basic', async (t) => {
  const app = await basicApp()
  const token = b64('alice:pa:ss word')
  for (const scheme of ['basic', 'BASIC', 'bAsIc', 'Basic']) {
    t.equal((await status(app, `${scheme} ${token}`)).statusCode, 200, scheme)
  }
  t.equal((await status(app, `bAsIc ${b64('alice:wrong')}`)).statusCode, 401)
})

t.test('[RFC 7235 §2.1, design] a scheme we do not own is 401 with our challenge, not 400', async (t) => {
  const app = await basicApp()
  for (const header of ['Bearer abc', 'Digest username="a"', 'Basicx YTpi', 'Basic\tYTpi', 'Negotiate', '']) {
    const res = await status(app, header)
    t.equal(res.statusCode, 401, JSON.stringify(header))
    t.equal(res.challenge, 'Basic realm="api", charset="UTF-8"')
  }
  t.same(calls, [])
})

t.test('[RFC 7617 §2] "Basic" with no credentials, or only spaces → 400', async (t) => {
  const app = await basicApp()
  for (const header of ['Basic', 'basic', 'Basic ', 'Basic    ']) {
    t.equal((await status(app, header)).statusCode, 400, JSON.stringify(header))
  }
})

t.test('[design: header over the size limit] a 100 KB Authorization header through inject → 400 (maxLength), callback not asked', async (t) => {
  const app = await basicApp()
  const huge = 'Basic ' + b64('alice:' + 'x'.repeat(75_000))
  t.ok(huge.length > 100_000)
  const res = await status(app, huge)
  t.equal(res.statusCode, 400)
  t.equal(res.code, 'FST_MULTIAUTH_BAD_REQUEST')
  const small = await basicApp({ basic: { verify: async () => ALICE, maxLength: 64 } })
  t.equal((await status(small, 'Basic ' + b64('alice:' + 'x'.repeat(100)))).statusCode, 400, 'a configured maxLength applies')
  t.same(calls, [])
})

t.test('[RFC 7617 §2] wrong password and unknown user give byte-identical bodies and challenges', async (t) => {
  const passwordHash = await hashPassword('right password')
  const app = await buildApp({ basic: { findCredential: async (u) => u === 'alice' ? { user: ALICE, passwordHash } : null } })
  app.get('/r', { onRequest: app.authGuard(['basic']) }, async () => 'ok')
  await app.ready()
  const wrong = await app.inject({ url: '/r', headers: { authorization: basicHeader('alice', 'wrong') } })
  const unknown = await app.inject({ url: '/r', headers: { authorization: basicHeader('mallory', 'wrong') } })
  const emptyUser = await app.inject({ url: '/r', headers: { authorization: basicHeader('', 'wrong') } })
  t.equal(wrong.statusCode, 401)
  for (const other of [unknown, emptyUser]) {
    t.equal(other.statusCode, wrong.statusCode)
    t.equal(other.body, wrong.body)
    t.equal(other.headers['www-authenticate'], wrong.headers['www-authenticate'])
    t.equal(other.headers['content-length'], wrong.headers['content-length'])
  }
})

t.test('over real HTTP (Node\'s parser in front of Fastify)', async (t) => {
  const app = await basicApp()
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const good = basicHeader('alice', 'pa:ss word')

  t.test('[RFC 9110 §5.3, RFC 7235 §4.2, design] duplicate Authorization headers → 400 (Node keeps only the first in headers; rawHeaders shows both)', async (t) => {
    const res = await rawRequest(port, `GET /r HTTP/1.1\r\nHost: x\r\nAuthorization: ${good}\r\nAuthorization: ${basicHeader('alice', 'other')}\r\nConnection: close\r\n\r\n`)
    t.equal(res.status, 400)
    t.match(res.raw, /FST_MULTIAUTH_BAD_REQUEST/)
    const sameTwice = await rawRequest(port, `GET /r HTTP/1.1\r\nHost: x\r\nAuthorization: ${good}\r\nauthorization: ${good}\r\nConnection: close\r\n\r\n`)
    t.equal(sameTwice.status, 400, 'even two identical valid headers in different case')
    const single = await rawRequest(port, `GET /r HTTP/1.1\r\nHost: x\r\nAuthorization: ${good}\r\nConnection: close\r\n\r\n`)
    t.equal(single.status, 200, 'the same request with one header passes (control)')
  })

  t.test('[RFC 9110 §5.5, Node maxHeaderSize] a 100 KB Authorization header is refused by Node with 431 before Fastify', async (t) => {
    const huge = 'Basic ' + 'A'.repeat(100 * 1024)
    const res = await rawRequest(port, `GET /r HTTP/1.1\r\nHost: x\r\nAuthorization: ${huge}\r\nConnection: close\r\n\r\n`)
    t.equal(res.status, 431)
    t.same(calls, [])
  })

  t.test('[RFC 9110 §5.5] a raw NUL or CR inside the header value is rejected by Node\'s parser (400), never reaches us', async (t) => {
    const res = await rawRequest(port, `GET /r HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\u0000\r\nConnection: close\r\n\r\n`)
    t.equal(res.status, 400)
    t.same(calls, [])
  })
})
