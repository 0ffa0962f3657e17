// An application that uses @fastify/passport next to fastify-multiauth (an old login kept while
// the API moves over, say), each with its own user type, in one program: @fastify/passport
// declares `request.user` (its PassportUser) and `request.login`; fastify-multiauth's user is
// `request.auth.user` and its session login is `app.authSessions.login` (app-scoped, so the two
// never collide). Nothing here needs a cast.
import Fastify from 'fastify'
import passport from '@fastify/passport'
import multiauth from 'fastify-multiauth'
import type { MultiauthUser } from 'fastify-multiauth'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

interface LegacyUser { username: string, legacy: true }
declare module 'fastify' {
  interface PassportUser extends LegacyUser {}
}
declare module 'fastify-multiauth' {
  interface MultiauthUser { id: string, roles: string[] }
}

const app = Fastify()
await app.register(passport.initialize())
await app.register(passport.secureSession())
passport.registerUserSerializer(async (user: LegacyUser) => user.username)
passport.registerUserDeserializer(async (username: string): Promise<LegacyUser> => ({ username, legacy: true }))
await app.register(multiauth, {
  apiKey: { verify: (key) => (key === 'k' ? { id: 'svc', roles: ['read'] } : null) },
  session: { secret: 's'.repeat(32), findUser: (id) => ({ id, roles: [] }) },
  roles: (user) => user.roles
})

app.get('/legacy', { preValidation: passport.authenticate('session') }, async (request) => {
  // @fastify/passport's request.user is its PassportUser ...
  const isPassportUser: Equal<typeof request.user, Fastify.PassportUser | undefined> = true
  const username: string | undefined = request.user?.username
  await request.login({ username: 'alice', legacy: true })
  return { isPassportUser, username }
})

app.get('/api', { onRequest: app.authGuard(['apiKey', 'session']) }, async (request) => {
  // ... and fastify-multiauth's is request.auth.user, typed as its MultiauthUser.
  const auth = request.auth
  if (auth === null) return null
  const isOurUser: Equal<typeof auth.user, MultiauthUser> = true
  const roles: string[] = auth.user.roles
  // @ts-expect-error passport's request.user is not ours
  const wrong: MultiauthUser | undefined = request.user
  return { isOurUser, roles, wrong }
})

app.post('/login', async (request) => {
  await app.authSessions.login(request, { id: 'alice', roles: ['admin'] })
  // @ts-expect-error our session login takes a MultiauthUser
  await app.authSessions.login(request, { username: 'alice', legacy: true })
  return 'ok'
})
