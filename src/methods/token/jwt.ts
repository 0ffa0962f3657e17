// The part of @fastify/jwt the token method uses, restated: the plugin's own code never loads
// @fastify/jwt's type declarations, whose `request.user` declaration would clash with an
// application's (`fastify-multiauth/request-user`, @fastify/passport, its own @fastify/jwt user type).

/** One @fastify/jwt namespace (`app.jwt[namespace]`), as registered per key. */
export interface JwtNamespace {
  sign (payload: Record<string, unknown>): string
  verify<T> (token: string): T
  decode<T> (token: string): T | null
}

/** What @fastify/jwt takes as `secret`: bytes for HS256, PEM text for a key pair. */
export type JwtSecret = Buffer | { public: string, private?: string }

/** The @fastify/jwt registration options the token method passes (one namespace per key). */
export interface JwtPluginOptions {
  namespace: string
  secret: JwtSecret
  decode: { complete: boolean }
  sign: Record<string, unknown>
  verify: Record<string, unknown>
}
