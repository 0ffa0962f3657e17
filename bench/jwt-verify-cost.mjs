#!/usr/bin/env node
// What one signature check costs on this machine, against what fast-jwt's prebuilt verifier (the
// one @fastify/jwt builds once per key, and our token method calls) costs for the same token:
// the floor for a JWT guard without the verified-token cache. In one process, no HTTP.
//   node bench/jwt-verify-cost.mjs [iterations=20000]
// Compare the "fast-jwt verifier" column with `ours-jwt-*` minus `bare` (server CPU per request)
// in docs/benchmarks.md.
import { createHmac, generateKeyPairSync, timingSafeEqual, verify } from 'node:crypto'
import { createRequire } from 'node:module'

// fast-jwt is @fastify/jwt's own dependency (not ours): resolved through it.
const require = createRequire(createRequire(import.meta.url).resolve('@fastify/jwt'))
const { createSigner, createVerifier } = require('fast-jwt')

const iterations = Number(process.argv[2] ?? 20_000)
const claims = { sub: 'user-1', jti: 'a1b2c3d4e5f6', scope: 'read write' }

function time (fn) {
  for (let i = 0; i < Math.min(2_000, iterations); i++) fn()
  const started = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) fn()
  return Number(process.hrtime.bigint() - started) / iterations / 1000
}

const cases = [
  ['HS256', () => {
    const secret = Buffer.alloc(32, 7)
    return { key: secret, verifyKey: secret, raw: (input, signature) => timingSafeEqual(createHmac('sha256', secret).update(input).digest(), signature) }
  }],
  ['EdDSA', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519')
    return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }), verifyKey: publicKey.export({ type: 'spki', format: 'pem' }), raw: (input, signature) => verify(null, input, publicKey, signature) }
  }],
  ['ES256', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }), verifyKey: publicKey.export({ type: 'spki', format: 'pem' }), raw: (input, signature) => verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature) }
  }],
  ['RS256', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }), verifyKey: publicKey.export({ type: 'spki', format: 'pem' }), raw: (input, signature) => verify('sha256', input, publicKey, signature) }
  }]
]

console.log(`Node ${process.version}, ${iterations} iterations each; µs per check`)
console.log('| algorithm | raw signature check (node:crypto) | fast-jwt verifier (decode, check, claims) | verifier / raw |')
console.log('|---|---:|---:|---:|')
for (const [algorithm, make] of cases) {
  const { key, verifyKey, raw } = make()
  const token = createSigner({ key, algorithm, expiresIn: 3_600_000 })(claims)
  const dot = token.lastIndexOf('.')
  const input = Buffer.from(token.slice(0, dot))
  const signature = Buffer.from(token.slice(dot + 1), 'base64url')
  if (!raw(input, signature)) throw new Error(`${algorithm}: the raw check refused the token`)
  const verifier = createVerifier({ key: verifyKey, algorithms: [algorithm], requiredClaims: ['sub', 'jti', 'exp', 'iat'] })
  verifier(token)
  const rawUs = time(() => raw(input, signature))
  const verifierUs = time(() => verifier(token))
  console.log(`| ${algorithm} | ${rawUs.toFixed(1)} | ${verifierUs.toFixed(1)} | ${(verifierUs / rawUs).toFixed(2)} |`)
}
