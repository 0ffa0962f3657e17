import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runFlow, startExample, statuses } from './helpers/example-process.js'

// examples/resource-server started as a user starts it, and the curl flow it prints pasted into a
// shell as it is, with the real curl: a client_credentials token from the local OpenID provider
// (oidc-provider, resource indicators, JWT access tokens), then the API that trusts that provider.

t.test('examples/resource-server: the printed curl flow — a provider token by client credentials, accepted by the API', async (t) => {
  const { flow } = await startExample(t, 'resource-server')
  t.match(flow, /^TOKEN=\$\(curl -s -u resource-client:\S+ -d grant_type=client_credentials -d resource=https:\/\/api\.example\.test -d scope=read http:\/\/127\.0\.0\.1:\d+\/token /m,
    'the token request: client credentials with a resource indicator, at the provider')
  const dir = mkdtempSync(join(tmpdir(), 'example-resource-server-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = await runFlow(flow, dir)
  t.match(out, /^eyJ[A-Za-z0-9_-]{21}$/m, 'step 1 printed the start of a JWT (the token was obtained)')
  t.same(statuses(out), [200, 403, 401], 'the API: accepted with scope read, write refused, no token refused')
  t.match(out, '{"orders":[{"id":1,"item":"tea"}],"client":"resource-client","scopes":["read"]} HTTP 200',
    'the provider\'s client, and the scope the provider granted, as the API saw them')
})
