import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { basicHeader, buildApp } from './app.js'
import type { MultiauthOptions, TokenOptions } from '../../src/index.js'

export const SECRET = 'test-secret-of-thirty-two-bytes!!' // 33 bytes
export const USERS = new Map([
  ['ann', { id: 'ann', password: 'pw-ann', scope: 'read write' }],
  ['bob', { id: 'bob', password: 'pw-bob', scope: 'read' }]
])

function b64url (value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

/** A JWT assembled by hand, for tokens no honest library would sign (alg none, confused keys). */
export function handMadeJwt (header: Record<string, unknown>, payload: Record<string, unknown>, hmacKey?: string | Buffer): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  const signature = hmacKey === undefined ? '' : createHmac('sha256', hmacKey).update(input).digest('base64url')
  return `${input}.${signature}`
}

export function claimsFor (sub: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  return { sub, jti: randomUUID(), iat: now, exp: now + 600, ...extra }
}

export function rsaPair (): { publicKey: string, privateKey: string } {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
  })
}

/** An app with Basic (password or token as user-id) and the token method, plus `GET /me` and `GET /write`. */
export async function tokenApp (token: Partial<TokenOptions> = {}, extra: Partial<MultiauthOptions> = {}): Promise<FastifyInstance> {
  const app = await buildApp({
    basic: {
      verify: async (username, password) => {
        const user = USERS.get(username)
        return user !== undefined && user.password === password ? { id: user.id } : null
      },
      allowToken: true
    },
    // These apps test tokens: many refusals from one inject IP must not meet Basic's default failure budgets.
    rateLimit: false,
    token: {
      secret: SECRET,
      findUser: async (claims) => USERS.has(claims.sub) ? { id: claims.sub } : null,
      claims: async (user) => {
        const id = (user as { id: string }).id
        return { sub: id, scope: USERS.get(id)?.scope }
      },
      ...token
    } as TokenOptions,
    ...extra
  })
  app.get('/me', { onRequest: app.authGuard(['token', 'basic']) }, async (request) => ({
    user: request.auth?.user ?? null, method: request.auth?.method, scopes: request.auth?.scopes
  }))
  app.get('/write', { onRequest: app.authGuard({ methods: ['token'], scopes: ['write'] }) }, async () => ({ ok: true }))
  return app
}

export async function login (app: FastifyInstance, user = 'ann'): Promise<{ token: string, expiration: number, refresh_token?: string }> {
  const res = await app.inject({ method: 'POST', url: '/tokens', headers: { authorization: basicHeader(user, USERS.get(user)?.password ?? '') } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  return res.json()
}

export function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}
