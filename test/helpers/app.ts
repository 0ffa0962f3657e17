import Fastify from 'fastify'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import multiauth from '../../src/index.js'
import type { MultiauthOptions } from '../../src/index.js'

/** A real Fastify instance with the plugin registered; the caller adds routes, then `ready()`. */
export async function buildApp (options: MultiauthOptions, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(server)
  await app.register(multiauth, options)
  return app
}

export function basicHeader (username: string, password: string): string {
  return 'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64')
}
