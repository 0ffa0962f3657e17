// Where the example keeps its API-key records: Redis, one JSON value per key id under
// "example:apikey:<id>", plus a set of ids. The server and admin.ts both use it, through the same
// REDIS_URL. Records hold the SHA-256 hash, never the key. A key's usage is the plugin's
// (apiKey.usage), in the plugin's store in the same Redis: read with readApiKeyUsage.
import type { Redis } from 'ioredis'
import { readApiKeyUsage, RedisStore } from '../../src/index.js'
import type { ApiKeyRecord, ApiKeyUsageTotals } from '../../src/index.js'

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
  /** Requests counted for a key (by its id or the key itself) and its last use, as the server wrote them; null when never used. */
  usage (keyOrId: string): Promise<ApiKeyUsageTotals | null>
  close (): Promise<void>
}

export function redisKeys (client: Redis, prefix = 'example:apikey:'): KeyRepository {
  // The server's store over the same connection, default prefix: what the plugin wrote is read back here.
  let store: RedisStore | undefined
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
    async usage (keyOrId) {
      store ??= new RedisStore({ client })
      return await readApiKeyUsage(store, keyOrId)
    },
    async close () { client.disconnect() }
  }
}
