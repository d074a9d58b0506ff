// GET /docs in a real headless Chromium: the Swagger UI loads from the gateway alone (no CDN,
// its static CSP on), renders the operations, and a screenshot lands in test-output/.
import t from 'tap'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { chromium, type Browser } from 'playwright-core'
import { sharedRedis } from './helpers/redis.js'
import { CALM, startGateway } from './helpers/gateway.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

const missing = !existsSync(CHROMIUM) && process.env.CI === undefined

t.test('the Swagger UI renders the proxy, health, metrics and admin operations', {
  skip: missing ? `${CHROMIUM} is missing (apt-get install chromium); it is required when CI is set` : false
}, async (t) => {
  const redis = await sharedRedis()
  t.teardown(() => redis.close())
  // CALM: Chromium starting on 2 cores stalls the event loop; /docs must not be shed meanwhile.
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: '/api/v1/users=http://127.0.0.1:9,/api/v1/products=http://127.0.0.1:9' })
  t.teardown(() => gw.app.close())
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  t.teardown(() => browser.close())

  const page = await browser.newPage({ viewport: { width: 1280, height: 2000 } })
  const foreign: string[] = []
  const failed: string[] = []
  const consoleErrors: string[] = []
  page.on('request', (r) => { if (!r.url().startsWith(gw.url) && !r.url().startsWith('data:')) foreign.push(r.url()) })
  page.on('requestfailed', (r) => { failed.push(`${r.url()} ${r.failure()?.errorText ?? ''}`) })
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()) })

  const res = await page.goto(gw.url + '/docs', { waitUntil: 'load' })
  t.equal(res?.status(), 200)
  t.match(res?.headers()['content-security-policy'], /default-src 'self'/, 'the static CSP is sent')
  await page.waitForSelector('.opblock', { timeout: 20_000 })

  const ops = await page.$$eval('.opblock-summary', (els) => els.map((e) => {
    const method = e.querySelector('.opblock-summary-method')?.textContent ?? ''
    const path = e.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? ''
    return `${method.trim()} ${path}`
  }))
  for (const op of ['GET /api/v1/users/{path}', 'POST /api/v1/users/{path}', 'DELETE /api/v1/products/{path}',
    'GET /healthz', 'GET /readyz', 'GET /metrics']) {
    t.ok(ops.includes(op), `${op} is listed`)
  }
  if (ops.some((o) => o.includes('/admin/'))) t.ok(ops.includes('POST /admin/tokens'), 'admin operations are listed')
  t.notOk(ops.some((o) => o.includes('*')), 'the catch-all proxy route is not listed')
  t.ok(await page.isVisible('.authorize'), 'the Authorize button (bearer security) is shown')
  t.same(foreign, [], 'nothing is fetched from anywhere else')
  t.same(failed, [], 'no request failed')
  t.same(consoleErrors, [], 'no console errors (CSP violations would show here)')

  await mkdir('test-output', { recursive: true })
  await page.screenshot({ path: 'test-output/docs.png', fullPage: false })
  t.ok(existsSync('test-output/docs.png'), 'screenshot saved to test-output/docs.png')
})
