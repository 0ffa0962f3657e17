import { subscribe, tracingChannel } from 'node:diagnostics_channel'
import multiauth, { AUTHENTICATE_TRACING_CHANNEL, MULTIAUTH_CHANNELS } from '../.build/index.js'
import { API_KEY, API_KEYS_BY_HASH, sha256 } from './fixtures.mjs'
import { serve } from './common.mjs'

// `--subscribe`: one subscriber on every event channel and on the five tracing channels, each
// counting what it receives (what a metrics exporter does at least), so the same guard can be
// measured with and without listeners in one run (docs/events.md: nothing is built for nobody).
if (process.argv.includes('--subscribe')) {
  const counts = new Map()
  const count = (name) => () => { counts.set(name, (counts.get(name) ?? 0) + 1) }
  for (const [name, channel] of Object.entries(MULTIAUTH_CHANNELS)) subscribe(channel, count(name))
  tracingChannel(AUTHENTICATE_TRACING_CHANNEL).subscribe({
    start: count('start'), end: count('end'), asyncStart: count('asyncStart'), asyncEnd: count('asyncEnd'), error: count('error')
  })
}

await serve(async (app) => {
  await app.register(multiauth, {
    // The record lookup an application does: hash the presented key, find the record.
    apiKey: { verify: (key) => API_KEYS_BY_HASH.get(sha256(key)) }
  })
  return { onRequest: app.authGuard(['apiKey']), headers: { 'x-api-key': API_KEY } }
})
