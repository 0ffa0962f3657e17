import type { FastifyReply, FastifyRequest } from 'fastify'
import { CredentialsInvalidError, CredentialsMissingError } from './errors.js'
import { events, requestFields, userIdOf } from './events.js'
import type { ForbiddenEvent } from './events.js'
import type { CompiledGuard } from './guard-spec.js'
import type { AuthFailure } from './outcome.js'
import type { AuthMethod, MethodName, MultiauthUser } from './types.js'

// What the guard reports when it does not admit a request: the log line, the security events
// (docs/events.md) and the 401/403 with its `WWW-Authenticate` challenges. Each publisher
// checks `hasSubscribers` before it builds a payload: with nobody listening, an event costs one
// property read.

/** A refusal that carries its own 403. */
export type ForbiddingFailure = AuthFailure & { forbidden: () => Error }

export function hasForbidden (failure: AuthFailure): failure is ForbiddingFailure {
  return failure.forbidden !== undefined
}

/** One refused credential: the log line, and the `refused` event with its fixed reason code. */
export function refuse (request: FastifyRequest, method: AuthMethod, failure: AuthFailure): void {
  request.log.info({ authMethod: method.name, reason: failure.reason }, 'multiauth: credentials refused')
  if (events.refused.hasSubscribers) events.refused.publish({ ...requestFields(request), method: method.name, reason: failure.code })
}

/** Credentials of `method` that cannot be decoded (a 400 unless another method admits the request). */
export function malformed (request: FastifyRequest, method: AuthMethod): void {
  if (events.refused.hasSubscribers) events.refused.publish({ ...requestFields(request), method: method.name, reason: 'malformed' })
}

/** The `forbidden` event: an authenticated user without a role or scope, or a credential this request may not use. */
export function forbidden (request: FastifyRequest, method: MethodName, user: MultiauthUser | undefined, missing: ForbiddenEvent['missing']): void {
  if (events.forbidden.hasSubscribers) events.forbidden.publish({ ...requestFields(request), method, userId: userIdOf(user), missing })
}

/**
 * A credential valid in itself that this request may not use: the 403 its failure carries. The
 * only such failure is a session cookie on an unsafe cross-site request (src/methods/session/).
 */
export function forbiddenByFailure (request: FastifyRequest, method: AuthMethod, failure: ForbiddingFailure): Error {
  forbidden(request, method.name, undefined, 'same-site')
  return failure.forbidden()
}

/** The 401 (its challenges on the reply); with nothing presented (`refused` undefined), a `refused` event with reason `missing`. */
export function unauthorized (request: FastifyRequest, reply: FastifyReply, guard: CompiledGuard, refused: Set<AuthMethod> | undefined): Error {
  if (refused === undefined && events.refused.hasSubscribers) events.refused.publish({ ...requestFields(request), method: undefined, reason: 'missing' })
  const challenges = refused === undefined
    ? guard.missingChallenges
    : guard.methods.flatMap((m) => {
      const c = refused.has(m) ? (m.invalidChallenge ?? m.challenge) : m.challenge
      return c === undefined ? [] : [c]
    })
  if (challenges.length > 0) reply.header('www-authenticate', challenges.length === 1 ? challenges[0] : challenges)
  return refused === undefined ? new CredentialsMissingError() : new CredentialsInvalidError()
}
