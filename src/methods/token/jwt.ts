// The part of @fastify/jwt the token method uses, restated: the plugin's own code never loads
// @fastify/jwt's type declarations, whose `request.user` declaration would clash with an
// application's (`fastify-multiauth/request-user`, @fastify/passport, its own @fastify/jwt user type).

/** One @fastify/jwt namespace (`app.jwt[namespace]`), as registered per key: it signs. */
export interface JwtNamespace {
  sign (payload: Record<string, unknown>): string
}

/** fast-jwt's synchronous verifier: the claims, or a thrown `TokenError` with a `FAST_JWT_*` code. */
export type JwtVerifier = (token: string) => Record<string, unknown>

/** The part of fast-jwt the token method uses. */
export interface FastJwt {
  createVerifier (options: Record<string, unknown> & { key: Buffer | string }): JwtVerifier
}

/** What @fastify/jwt takes as `secret`: bytes for HS256, PEM text for a key pair. */
export type JwtSecret = Buffer | { public: string, private?: string }

/** The @fastify/jwt registration options the token method passes (one namespace per key). */
export interface JwtPluginOptions {
  namespace: string
  secret: JwtSecret
  sign: Record<string, unknown>
  verify: Record<string, unknown>
}
