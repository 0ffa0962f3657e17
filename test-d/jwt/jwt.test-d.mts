// An application that uses @fastify/jwt itself next to fastify-multiauth, each with its own user
// type: @fastify/jwt's `request.user` (its FastifyJWT['user']) and jwt API keep theirs, and
// fastify-multiauth's user is `request.auth.user`. The published declarations of fastify-multiauth
// do not touch @fastify/jwt's types, nor declare `request.user` (that is opt-in, and not for this
// application), so the two compile side by side without a cast.
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import multiauth from 'fastify-multiauth'
import type { MultiauthUser } from 'fastify-multiauth'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

interface JwtUser { sub: string, admin: boolean }
declare module '@fastify/jwt' {
  interface FastifyJWT { payload: { sub: string, scope?: string }, user: JwtUser }
}
declare module 'fastify-multiauth' {
  interface MultiauthUser { id: string, email: string }
}

const app = Fastify()
await app.register(jwt, { secret: 'y'.repeat(32) })
await app.register(multiauth, {
  token: { secret: 'x'.repeat(32), findUser: (claims) => ({ id: claims.sub, email: `${claims.sub}@example.com` }), expiresIn: '15m' }
})

const signed: string = app.jwt.sign({ sub: 'alice' })
// @ts-expect-error the application's own payload type is enforced
app.jwt.sign({ subject: 'alice' })

app.get('/jwt', async (request) => {
  const payload = await request.jwtVerify<{ sub: string }>()
  const sub: string = payload.sub
  // @fastify/jwt's request.user is the application's FastifyJWT['user'] ...
  const isJwtUser: Equal<typeof request.user, JwtUser> = true
  const admin: boolean = request.user.admin
  return { sub, admin, signed, isJwtUser }
})

app.get('/ours', { onRequest: app.authGuard(['token']) }, async (request) => {
  // ... and fastify-multiauth's user is request.auth.user, typed as its MultiauthUser.
  const auth = request.auth
  if (auth === null) return null
  const isOurUser: Equal<typeof auth.user, MultiauthUser> = true
  const email: string = auth.user.email
  const { accessToken } = await app.authTokens.issue(auth.user, { request })
  // @ts-expect-error our user is not @fastify/jwt's
  const wrong: JwtUser = auth.user
  return { email, accessToken, isOurUser, wrong }
})
