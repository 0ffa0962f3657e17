import Fastify from 'fastify'
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions, HookHandlerDoneFunction } from 'fastify'
import multiauth from '../../src/index.js'
import type { MultiauthGuardHook, MultiauthOptions } from '../../src/index.js'

/** A real Fastify instance with the plugin registered; the caller adds routes, then `ready()`. */
export async function buildApp (options: MultiauthOptions, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(server)
  await app.register(multiauth, options)
  return app
}

export function basicHeader (username: string, password: string): string {
  return 'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64')
}

/** Wraps a guard so the response says (`x-guard-sync: yes|no`) whether it called done() before returning. */
export function traced (guard: MultiauthGuardHook) {
  return function tracedGuard (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    let returned = false
    guard(request, reply, (err?: Error) => {
      reply.header('x-guard-sync', returned ? 'no' : 'yes')
      done(err as Error)
    })
    returned = true
  }
}
