// An application that uses @fastify/jwt itself next to fastify-multiauth (whose token
// method augments @fastify/jwt's FastifyJWT['user']): its own payload typing and jwt API still compile.
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import multiauth from 'fastify-multiauth'

declare module '@fastify/jwt' {
  interface FastifyJWT { payload: { sub: string, scope?: string } }
}
declare module 'fastify-multiauth' {
  interface MultiauthUser { id: string }
}

const app = Fastify()
await app.register(jwt, { secret: 'y'.repeat(32) })
await app.register(multiauth, { token: { secret: 'x'.repeat(32), lookup: (claims) => ({ id: claims.sub }) } })

const signed: string = app.jwt.sign({ sub: 'alice' })
// @ts-expect-error the application's own payload type is enforced
app.jwt.sign({ subject: 'alice' })

app.get('/', async (request) => {
  const payload = await request.jwtVerify<{ sub: string }>()
  const sub: string = payload.sub
  // Both declarations of request.user agree on one type.
  const id: string | undefined = request.user?.id
  return { sub, id, signed }
})
