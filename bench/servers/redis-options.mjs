// How the Redis variants of ours build their RedisStore from BENCH_REDIS_URL: the URL as is (the
// store's own client options, auto-pipelining on), or with `--no-autopipelining` the same server
// as ioredis connection options with auto-pipelining off.
export function redisConnection (url, argv) {
  if (!argv.includes('--no-autopipelining')) return url
  const { hostname, port } = new URL(url)
  return { host: hostname, port: Number(port || 6379), enableAutoPipelining: false }
}
