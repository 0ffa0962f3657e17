import t from 'tap'
import type { Test } from 'tap'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import type { BrowserContext, Page } from 'playwright-core'
import { redisSkipReason } from './helpers/redis.js'

// The examples are loaded by a computed specifier, outside this TypeScript program: each one is
// a program of its own (`npm run typecheck`), declaring its own MultiauthUser, which must not
// merge into the tests' (where any object is a user).
interface ExampleServer { url: string, issuer?: string, close: () => Promise<void> }
type StartExample = (options: { port: number }) => Promise<ExampleServer>
const exampleStart = async (name: string): Promise<StartExample> => (await import(`../examples/${name}/server.js`)).start
const startSessions = await exampleStart('sessions')
const startOAuth = await exampleStart('oauth-login')

// A real headless Chromium (Debian's, never a downloaded one) logs in through the examples.
const CHROMIUM = '/usr/bin/chromium'
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync'
]
const OUTPUT = join(process.cwd(), 'test-output')

function chromiumSkipReason (): string | false {
  if (existsSync(CHROMIUM)) return false
  if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing, and CI=true requires the browser test (apt-get install -y chromium)`)
  process.stderr.write(`\n*** ${CHROMIUM} not found: SKIPPING the browser test. Install it with \`apt-get install -y chromium\`. ***\n`)
  return 'chromium not installed'
}

/** A fresh profile per test; a screenshot under test-output/ when the test failed. */
async function withBrowser (t: Test, name: string, fn: (page: Page) => Promise<void>): Promise<void> {
  const profile = await mkdtemp(join(tmpdir(), 'multiauth-chromium-'))
  // launchPersistentContext passes the fresh --user-data-dir; headless is in ARGS.
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: false, args: ARGS, timeout: 30_000
  })
  const page = context.pages()[0] ?? await context.newPage()
  page.setDefaultTimeout(15_000)
  page.setDefaultNavigationTimeout(15_000)
  let failed = false
  try {
    await fn(page)
  } catch (err) {
    failed = true
    t.comment(`page ${page.url()}: ${(await page.textContent('body').catch(() => '')) ?? ''}`)
    throw err
  } finally {
    if (failed || !t.passing()) {
      await mkdir(OUTPUT, { recursive: true })
      const file = join(OUTPUT, `${name}-${Date.now()}.png`)
      await page.screenshot({ path: file, fullPage: true }).then(() => t.comment(`screenshot: ${file}`), () => {})
    }
    await context.close()
    await rm(profile, { recursive: true, force: true })
  }
}

const skip = chromiumSkipReason()

t.test('Chromium: session form login, protected page, logout', { skip: skip || redisSkipReason() }, async (t) => {
  const server = await startSessions({ port: 0 })
  t.teardown(server.close)
  await withBrowser(t, 'sessions', async (page) => {
    let response = await page.goto(`${server.url}/private`)
    t.equal(response?.status(), 401, 'protected page refused before login')
    await page.goto(`${server.url}/`)
    await page.fill('#username', 'alice')
    await page.fill('#password', 'wonderland')
    await Promise.all([page.waitForURL(`${server.url}/private`), page.click('#sign-in')])
    t.equal(await page.textContent('#greeting'), 'Hello, Alice (via session)')
    const cookie = (await page.context().cookies(server.url)).find((c) => c.name === 'sid')
    t.equal(cookie?.httpOnly, true, 'HttpOnly session cookie')
    t.equal(cookie?.sameSite, 'Lax')
    t.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the session cookie')
    // The browser's own form POST carries Origin/Sec-Fetch-Site, so the CSRF check lets it through.
    await Promise.all([page.waitForURL(`${server.url}/`), page.click('#logout')])
    response = await page.goto(`${server.url}/private`)
    t.equal(response?.status(), 401, 'protected page refused after logout')
    t.notOk((await page.context().cookies(server.url)).some((c) => c.name === 'sid'), 'cookie cleared')
  })
})

t.test('Chromium: OAuth login through the local oidc-provider, protected page, logout', { skip }, async (t) => {
  const server = await startOAuth({ port: 0 })
  t.teardown(server.close)
  await withBrowser(t, 'oauth-login', async (page) => {
    let response = await page.goto(`${server.url}/private`)
    t.equal(response?.status(), 401, 'protected page refused before login')
    await page.goto(`${server.url}/`)
    await Promise.all([page.waitForURL(/\/interaction\//), page.click('#sign-in')])
    t.ok(page.url().startsWith(server.issuer as string), 'on the provider\'s login page')
    await page.fill('#provider-login', 'dave')
    await Promise.all([page.waitForURL(`${server.url}/private`), page.click('#provider-submit')])
    t.equal(await page.textContent('#greeting'), 'Hello, Dave (via oauth2, provider local)')
    await Promise.all([page.waitForURL(`${server.url}/`), page.click('#logout')])
    response = await page.goto(`${server.url}/private`)
    t.equal(response?.status(), 401, 'protected page refused after logout')
  })
})
