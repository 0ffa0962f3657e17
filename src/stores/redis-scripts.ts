import type { ChainableCommander, Cluster, Redis } from 'ioredis'

// The Lua scripts RedisStore runs. Each touches exactly one key, declared in KEYS, so it is
// atomic on a standalone server and Cluster-safe (one hash slot) without hash tags.

// INCR then set the TTL only on creation, atomically: a counter never lives forever,
// and later increments do not extend its window.
const INCREMENT = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`

// SET unless the key holds ARGV[3] (a tombstone): one key, so it is atomic and Cluster-safe.
const SET_UNLESS_EQUAL = `if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

// Compare-and-set on one key: atomic and Cluster-safe.
const COMPARE_AND_SET = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`

// A capped ordered set on one key (Cluster-safe: no other key is touched). The score is the
// highest score so far plus one, so the order is insertion order whatever the clocks of the
// instances; returns the members dropped.
const ADD_CAPPED = `local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local seq = (tonumber(top[2]) or 0) + 1
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if extra <= 0 then return {} end
local dropped = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
return dropped`

// API-key usage on one key (Cluster-safe): the JSON value of src/stores/usage-record.ts, with
// ARGV[1] requests added and lastUsedAt raised to ARGV[2] (never lowered: instances flush out of
// order). A value that cannot be read is replaced, as MemoryStore does. cjson writes integers up
// to 10^14 exactly, far beyond any count or a ms timestamp.
const RECORD_USAGE = `local count, at = tonumber(ARGV[1]), tonumber(ARGV[2])
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, stored = pcall(cjson.decode, raw)
  if ok and type(stored) == 'table' and type(stored.count) == 'number' and type(stored.lastUsedAt) == 'number' then
    count = count + stored.count
    if stored.lastUsedAt > at then at = stored.lastUsedAt end
  end
end
redis.call('SET', KEYS[1], cjson.encode({ count = count, lastUsedAt = at }), 'PX', ARGV[3])
return count`

// A failure budget's counter: one hash per key, `f` the refusals counted in the window, `p` the
// attempts in flight on every instance (each holds a slot). Both scripts touch one key
// (Cluster-safe). A counter 0.1 left (a plain INCR string) becomes the refusals it counted.
const FROM_0_1 = `if redis.call('TYPE', KEYS[1]).ok == 'string' then
  local n = redis.call('GET', KEYS[1])
  local left = redis.call('PTTL', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'f', n)
  if left > 0 then redis.call('PEXPIRE', KEYS[1], left) end
end
`

// Takes a slot while refusals + attempts in flight < max (ARGV[1]); the window (ARGV[2] ms) starts
// with the first slot. Returns {taken (1|0), refusals, in flight, ttl ms}.
const RESERVE = FROM_0_1 + `local counts = redis.call('HMGET', KEYS[1], 'f', 'p')
local f = tonumber(counts[1]) or 0
local p = tonumber(counts[2]) or 0
if f + p >= tonumber(ARGV[1]) then return {0, f, p, redis.call('PTTL', KEYS[1])} end
redis.call('HINCRBY', KEYS[1], 'p', 1)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {1, f, p + 1, redis.call('PTTL', KEYS[1])}`

// Ends an attempt: its slot is given back, and a refusal (ARGV[1] == '1') is counted (in a new
// window of ARGV[2] ms if the old one ended meanwhile). Never below zero. A counter back to no
// refusal and nothing in flight is deleted: successful traffic leaves no key behind.
const SETTLE = FROM_0_1 + `local counts = redis.call('HMGET', KEYS[1], 'f', 'p')
local f = tonumber(counts[1]) or 0
local p = tonumber(counts[2]) or 0
if p > 0 then p = p - 1 end
if ARGV[1] == '1' then f = f + 1 end
if f == 0 and p == 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('HSET', KEYS[1], 'f', f, 'p', p)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`

/** A failure budget's counter after `reserve`: whether this attempt got a slot, and what the counter holds. */
export interface Reservation { taken: boolean, refusals: number, inFlight: number, ttlMs: number }

/** The custom commands the store defines on its client (and on pipelines of it). */
export interface Scripts {
  multiauthIncrement: (key: string, ttl: number) => Promise<number>
  multiauthSetUnlessEqual: (key: string, value: string, ttl: number, unless: string) => Promise<number>
  multiauthCompareAndSet: (key: string, expected: string, value: string, ttl: number) => Promise<number>
  multiauthAddCapped: (key: string, member: string, max: number, ttl: number) => Promise<string[]>
  multiauthReserve: (key: string, max: number, windowMs: number) => Promise<[number, number, number, number]>
  multiauthSettle: (key: string, refused: '1' | '0', windowMs: number) => Promise<number>
  multiauthRecordUsage: (key: string, count: number, atMs: number, ttl: number) => Promise<number>
}
export type PipelineScripts = { [K in keyof Scripts]: (...args: Parameters<Scripts[K]>) => ChainableCommander }

/** Defines the scripts as custom commands on `client` (and so on its pipelines). */
export function defineScripts (client: Redis | Cluster): Scripts {
  client.defineCommand('multiauthIncrement', { numberOfKeys: 1, lua: INCREMENT })
  client.defineCommand('multiauthSetUnlessEqual', { numberOfKeys: 1, lua: SET_UNLESS_EQUAL })
  client.defineCommand('multiauthCompareAndSet', { numberOfKeys: 1, lua: COMPARE_AND_SET })
  client.defineCommand('multiauthAddCapped', { numberOfKeys: 1, lua: ADD_CAPPED })
  client.defineCommand('multiauthReserve', { numberOfKeys: 1, lua: RESERVE })
  client.defineCommand('multiauthSettle', { numberOfKeys: 1, lua: SETTLE })
  client.defineCommand('multiauthRecordUsage', { numberOfKeys: 1, lua: RECORD_USAGE })
  return client as unknown as Scripts
}
