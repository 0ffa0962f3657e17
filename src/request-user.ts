// Opt-in typing of `request.user`: `import 'fastify-multiauth/request-user'` once in your
// application. The plugin sets `request.user` at runtime either way (to what `request.auth.user`
// holds); its type is opt-in because @fastify/jwt and @fastify/passport declare `request.user`
// with types of their own, and two declarations of one property cannot coexist. Without them,
// import this; with them, use `request.auth.user`, which is always typed.
import type { MultiauthUser } from './core/types.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** What the successful method's callback returned (the same as `request.auth.user`); `null` until then. */
    user: MultiauthUser | null
  }
}

export {}
