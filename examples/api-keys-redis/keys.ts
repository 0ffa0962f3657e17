// Where the example keeps its API-key records: Redis (one JSON value per key id, under
// "example:apikey:<id>", plus a set of ids) or a JSON file. Records hold the SHA-256 hash,
// never the key.
import { readFile, writeFile, rename } from 'node:fs/promises'
import { Redis } from 'ioredis'
import type { ApiKeyRecord } from '../../src/index.js'

export interface User { id: string }

export interface StoredKey extends ApiKeyRecord<User> {
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

export function fileKeys (path: string): KeyRepository {
  const load = async (): Promise<Record<string, StoredKey>> => {
    try {
      return JSON.parse(await readFile(path, 'utf8'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
      throw err
    }
  }
  return {
    async get (id) { return (await load())[id] ?? null },
    async put (record) {
      const all = await load()
      all[record.id] = record
      // Write then rename: a crash never leaves a half-written keys file.
      await writeFile(path + '.tmp', JSON.stringify(all, null, 2) + '\n', { mode: 0o600 })
      await rename(path + '.tmp', path)
    },
    async list () { return Object.values(await load()) },
    async close () {}
  }
}
