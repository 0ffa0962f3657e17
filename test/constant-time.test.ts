import t from 'tap'
import { createHash } from 'node:crypto'
import { constantTimeEqual } from '../src/index.js'
import { sha256, sha256Text } from '../src/lib/hash.js'

// constantTimeEqual hashes both sides (one-shot crypto.hash where Node has it), so inputs of
// any length compare without leaking it; these pin its answers and the digests it relies on.

t.test('constantTimeEqual answers like ===', async (t) => {
  const cases: Array<[string, string]> = [
    ['correct horse battery staple', 'correct horse battery staple'],
    ['secret', 'Secret'],
    ['secret', 'secret '],
    ['', ''],
    ['', 'x'],
    ['pässwörd', 'pässwörd'],
    ['pässwörd', 'passwörd'],
    ['😀', '😀'],
    ['a'.repeat(10_000), 'a'.repeat(10_000)],
    ['a'.repeat(10_000), 'a'.repeat(9_999)]
  ]
  for (const [a, b] of cases) {
    t.equal(constantTimeEqual(a, b), a === b, `${JSON.stringify(a.slice(0, 12))} vs ${JSON.stringify(b.slice(0, 12))}`)
    t.equal(constantTimeEqual(b, a), a === b, 'symmetric')
  }
})

t.test('sha256 helpers give the digests createHash gives (UTF-8, as before)', async (t) => {
  for (const value of ['', 'abc', 'pässwörd', '😀', 'x\ud800y', 'a'.repeat(100_000)]) {
    const expected = createHash('sha256').update(value).digest()
    t.same(sha256(value), expected, `buffer of ${JSON.stringify(value.slice(0, 8))}`)
    t.equal(sha256Text(value, 'hex'), expected.toString('hex'))
    t.equal(sha256Text(value, 'base64url'), expected.toString('base64url'))
  }
  t.same(sha256(Buffer.from([0, 1, 2])), createHash('sha256').update(Buffer.from([0, 1, 2])).digest(), 'bytes')
})
