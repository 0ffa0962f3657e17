import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

type ErrorHandler = (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => unknown

/**
 * Fastify's own default handler. Every handler an application sets is stored bound
 * (`func.bind(instance)`, so its name starts with "bound "); only the default is the bare
 * function. test/route-errors.test.ts pins this against the installed Fastify.
 */
function isFastifyDefault (handler: ErrorHandler): boolean {
  return handler.name === 'defaultErrorHandler'
}

/**
 * The route-level `errorHandler` of every route the plugin adds (token routes, OAuth2 login
 * routes), so their errors reach the application's `setErrorHandler` whatever the order:
 * Fastify gives a route the error handler in force when the plugin that added it finished
 * loading, which is before an application that calls `setErrorHandler` after `register`.
 * At request time this reads the handler in force now (`request.server.errorHandler`, looked up
 * through the encapsulation chain) and hands the error to it.
 *
 * Token endpoint errors (`oauthError`, RFC 6749 §5.2 / RFC 7009) answer the RFC's JSON body
 * when the application has no handler of its own.
 */
export function pluginRouteErrorHandler (app: FastifyInstance): ErrorHandler {
  // What Fastify itself falls back to when this handler rethrows: the handler at registration.
  const atRegistration = app.errorHandler as ErrorHandler
  return function multiauthRouteErrorHandler (error, request, reply) {
    const current = request.server.errorHandler as ErrorHandler
    if (isFastifyDefault(current)) {
      const code = (error as { oauthError?: unknown }).oauthError
      if (typeof code === 'string') {
        request.log.info({ err: error }, 'multiauth: token request refused')
        return reply.code(error.statusCode ?? 400).send({ error: code, error_description: error.message })
      }
      throw error
    }
    if (current === atRegistration) throw error
    return current(error, request, reply)
  }
}
