// What the docs' snippets may use without defining it: the application's own things (its
// database, a handler), and `app`, for a snippet that continues the page's first one.
// Global declarations (this file is a script, not a module); a snippet's own names shadow them.
/* eslint-disable no-var */

interface User { id: string, name: string, email?: string, roles: string[], scopes: string[] }
interface UserWithPassword extends User { passwordHash: string }

declare var app: import('fastify').FastifyInstance

declare var db: {
  users: {
    find (id: string): Promise<User | null>
    findActive (id: string): Promise<User | null>
    findByName (name: string): Promise<UserWithPassword | null>
    findByEmail (email: string): Promise<UserWithPassword | null>
    upsertByIdentity (provider: string, subject: string, fields: { email?: string | undefined }): Promise<User>
    updatePasswordHash (id: string, hash: string): Promise<void>
    /** `UPDATE … SET password_hash = newHash WHERE id = id AND password_hash = oldHash`: the rows updated. */
    replacePasswordHash (id: string, newHash: string, oldHash: string): Promise<number>
  }
  apiKeys: {
    findById (id: string): Promise<(import('fastify-multiauth').ApiKeyRecord<User> & { id: string }) | null>
    insert (record: object): Promise<void>
    update (id: string, fields: object): Promise<void>
    /** Sets `graceEndsAt`/`replacedBy` only on a record not rotated or revoked yet: the rows updated. */
    markRotated (id: string, fields: { graceEndsAt: number, replacedBy: string }): Promise<number>
  }
  transaction<T> (work: (tx: typeof db) => Promise<T>): Promise<T>
  /** `{ user, passwordHash }` for `basic.findUser`. */
  userRecord (email: string): Promise<{ user: User, passwordHash: string } | null>
  userById (id: string): Promise<User | null>
}

declare function handler (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply): Promise<unknown>
declare function checkPassword (body: unknown): Promise<User | null>
declare function listOrders (user: unknown, keyId: string | undefined): Promise<unknown[]>
