// Admin script: issue, list, rotate and revoke API keys, and show their usage, in the Redis the server reads.
//
//   REDIS_URL=redis://… npx tsx examples/api-keys-redis/admin.ts issue alice --scopes orders:read --env live --rate 100
//   REDIS_URL=redis://… npx tsx examples/api-keys-redis/admin.ts list
//   REDIS_URL=redis://… npx tsx examples/api-keys-redis/admin.ts usage <id or key>
//   REDIS_URL=redis://… npx tsx examples/api-keys-redis/admin.ts rotate <id> --grace 3600   (seconds)
//   REDIS_URL=redis://… npx tsx examples/api-keys-redis/admin.ts revoke <id>
//
// Usage (requests and last use) is what the server wrote: at a key's first request, then at most
// once a minute per key, and when it stops; a running server may hold up to a minute's requests.
//
// REDIS_URL is required and must be the server's: the server prints the line to copy when it
// starts (its own throwaway redis-server's address, when it was not given one).
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { generateApiKey, rotateApiKey } from '../../src/index.js'
import { redisKeys, SetupError } from './keys.js'
import type { KeyRepository, StoredKey } from './keys.js'
import type { ApiKeyUsageTotals } from '../../src/index.js'

const PREFIX = 'demo'

export async function openRepository (redisUrl = process.env.REDIS_URL): Promise<KeyRepository> {
  if (redisUrl === undefined || redisUrl === '') {
    throw new SetupError('needs REDIS_URL, the Redis the server uses: start the server (npm run example -- api-keys-redis) and copy the REDIS_URL=… line it prints')
  }
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
  let lastError: Error | undefined
  client.on('error', (err: Error) => { lastError = err }) // the failed connect() below says it, once
  try {
    await client.connect()
  } catch (err) {
    client.disconnect()
    throw new SetupError(`cannot reach Redis at REDIS_URL=${redisUrl} (${(lastError ?? err as Error).message})`)
  }
  return redisKeys(client)
}

export async function issueKey (repo: KeyRepository, user: string, options: { environment?: string, scopes?: string[], rate?: number, expiresInDays?: number } = {}): Promise<{ key: string, record: StoredKey }> {
  const environment = options.environment ?? 'live'
  const made = generateApiKey({ prefix: PREFIX, environment })
  const record: StoredKey = {
    id: made.id,
    hash: made.hash,
    start: made.start,
    prefix: made.prefix,
    environment,
    user: { id: user },
    scopes: options.scopes ?? [],
    createdAt: Date.now(),
    ...(options.rate === undefined ? {} : { rateLimit: { max: options.rate, timeWindow: 60_000 } }),
    ...(options.expiresInDays === undefined ? {} : { expiresAt: Date.now() + options.expiresInDays * 86_400_000 })
  }
  await repo.put(record)
  return { key: made.key, record }
}

function describeUsage (usage: ApiKeyUsageTotals | null): string {
  if (usage === null) return 'never used'
  return `${usage.count} ${usage.count === 1 ? 'request' : 'requests'}, last ${usage.lastUsedAt.toISOString()}`
}

async function main (): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      env: { type: 'string', default: 'live' },
      scopes: { type: 'string', default: '' },
      rate: { type: 'string' },
      'expires-in-days': { type: 'string' },
      grace: { type: 'string', default: '86400' },
      json: { type: 'boolean', default: false }
    }
  })
  const [command, arg] = positionals
  const repo = await openRepository()
  const print = (value: unknown, text: string): void => { console.log(values.json ? JSON.stringify(value) : text) }
  try {
    switch (command) {
      case 'issue': {
        if (arg === undefined) throw new Error('usage: issue <user-id> [--env live] [--scopes a,b] [--rate N] [--expires-in-days N]')
        const { key, record } = await issueKey(repo, arg, {
          environment: values.env,
          scopes: values.scopes === '' ? [] : values.scopes.split(','),
          rate: values.rate === undefined ? undefined : Number(values.rate),
          expiresInDays: values['expires-in-days'] === undefined ? undefined : Number(values['expires-in-days'])
        })
        print({ key, id: record.id }, `key ${key}\nid  ${record.id}\nShown once: only its hash is stored.`)
        break
      }
      case 'list': {
        const all = await repo.list()
        const usages = await Promise.all(all.map(async (r) => await repo.usage(r.id)))
        print(all.map(({ hash: _hash, ...r }, i) => ({ ...r, usage: usages[i] ?? null })), all.map((r, i) =>
          `${r.id}  ${r.start}…  user=${r.user.id}  scopes=${(r.scopes ?? []).join(',') || '-'}  ${describeUsage(usages[i] ?? null)}` +
          (r.revoked ? '  REVOKED' : '') + (r.graceEndsAt ? `  rotated, works until ${new Date(r.graceEndsAt).toISOString()}` : '')
        ).join('\n') || '(no keys)')
        break
      }
      case 'usage': {
        if (arg === undefined) throw new Error('usage: usage <id or key>')
        const usage = await repo.usage(arg)
        print({ count: usage?.count ?? 0, lastUsedAt: usage?.lastUsedAt.toISOString() ?? null }, describeUsage(usage))
        break
      }
      case 'rotate': {
        const old = arg === undefined ? null : await repo.get(arg)
        if (old === null) throw new Error(`usage: rotate <id> [--grace seconds]; no key ${arg}`)
        const next = rotateApiKey(old, { grace: Number(values.grace) * 1000 }) // --grace is in seconds; grace in ms
        await repo.put({ ...old, id: next.id, hash: next.hash, start: next.start, createdAt: Date.now(), graceEndsAt: undefined, replacedBy: undefined })
        await repo.put({ ...old, ...next.previous })
        print({ key: next.key, id: next.id, previous: next.previous }, `key ${next.key}\nid  ${next.id}\nThe old key works until ${new Date(next.previous.graceEndsAt).toISOString()}.`)
        break
      }
      case 'revoke': {
        const old = arg === undefined ? null : await repo.get(arg)
        if (old === null) throw new Error(`usage: revoke <id>; no key ${arg}`)
        await repo.put({ ...old, revoked: true })
        print({ revoked: arg }, `revoked ${arg}`)
        break
      }
      default:
        throw new Error('commands: issue <user-id> | list | usage <id or key> | rotate <id> | revoke <id>')
    }
  } finally {
    await repo.close()
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => { console.error(`admin.ts: ${err.message}`); process.exitCode = 1 })
}
