// Where the example keeps its API-key records: Redis, one JSON value per key id under
// "example:apikey:<id>", plus a set of ids. The server and admin.ts both use it, through the same
// REDIS_URL. Records hold the SHA-256 hash, never the key.
import type { Redis } from 'ioredis'
import type { ApiKeyRecord } from '../../src/index.js'

/** A setup failure for the person at the terminal (no Redis, wrong REDIS_URL): printed as one line, without a stack. */
export class SetupError extends Error {}

// The user a key belongs to, which `request.auth.user` is (declaration merging; in your
// application: `declare module 'fastify-multiauth'`).
declare module '../../src/index.js' {
  interface MultiauthUser { id: string }
}

export interface StoredKey extends ApiKeyRecord {
  id: string
  start: string
  prefix: string
  environment: string
  createdAt: number
}

export interface KeyRepository {
  get (id: string): Promise<StoredKey | null>
  put (record: StoredKey): Promise<void>
  list (): Promise<StoredKey[]>
  close (): Promise<void>
}

export function redisKeys (client: Redis, prefix = 'example:apikey:'): KeyRepository {
  return {
    async get (id) {
      const json = await client.get(prefix + id)
      return json === null ? null : JSON.parse(json)
    },
    async put (record) {
      await client.multi().set(prefix + record.id, JSON.stringify(record)).sadd(prefix + 'ids', record.id).exec()
    },
    async list () {
      const ids = await client.smembers(prefix + 'ids')
      const values = ids.length === 0 ? [] : await client.mget(ids.map((id) => prefix + id))
      return values.flatMap((v) => v === null ? [] : [JSON.parse(v) as StoredKey])
    },
    async close () { client.disconnect() }
  }
}
