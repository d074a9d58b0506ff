// GET /docs in a real headless Chromium: the Swagger UI loads from the gateway alone (no CDN,
// its static CSP on), renders the operations, and a screenshot lands in test-output/.
import t from 'tap'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { chromium, type Browser } from 'playwright-core'
import { sharedRedis } from './helpers/redis.js'
import { CALM, startGateway } from './helpers/gateway.js'
import { Upstream } from './helpers/upstream.js'
import { createTestToken } from './helpers/tokens.js'

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
  for (const op of ['GET /api/v1/users/{path}', 'POST /api/v1/users/{path}', 'DELETE /api/v1/products/{path}', 'GET /api/v1/products',
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

t.test('Try it out, with a token entered in Authorize, calls a path below a prefix and the prefix itself', {
  skip: missing ? `${CHROMIUM} is missing (apt-get install chromium); it is required when CI is set` : false
}, async (t) => {
  const redis = await sharedRedis()
  t.teardown(() => redis.close())
  const upstream = await new Upstream().start()
  t.teardown(() => upstream.close())
  const token = await createTestToken(redis.url)
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=http://127.0.0.1:9,/api/v1/products=${upstream.url}` })
  t.teardown(() => gw.app.close())
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 2000 } })
  const consoleErrors: string[] = []
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()) })
  page.on('pageerror', (e) => { consoleErrors.push(e.message) })

  await page.goto(gw.url + '/docs', { waitUntil: 'load' })
  await page.waitForSelector('.opblock', { timeout: 20_000 })

  // Authorize: the bearerAuth scheme's value field, then Authorize and Close.
  await page.click('.auth-wrapper .authorize')
  const bearer = page.locator('.auth-container', { hasText: 'bearerAuth' })
  await bearer.locator('input').fill(token.key)
  await bearer.locator('button.authorize').click()
  await page.click('.btn-done')

  const tryOut = async (operationId: string, path: string | null): Promise<{ status: string, body: string }> => {
    const op = page.locator(`#operations-proxy-${operationId}`)
    await op.locator('.opblock-summary').first().click()
    await op.locator('.try-out__btn').click()
    if (path !== null) await op.locator('input[placeholder="path"]').fill(path)
    await op.locator('.execute').click()
    const status = op.locator('.live-responses-table .response .response-col_status')
    await status.first().waitFor({ timeout: 20_000 })
    const body = await op.locator('.live-responses-table .response-col_description pre').first().textContent({ timeout: 20_000 })
    return { status: (await status.first().textContent() ?? '').trim(), body: body ?? '' }
  }

  const below = await tryOut('proxyGetApiV1Products', '1/reviews')
  t.equal(below.status, '200', 'GET /api/v1/products/{path} with 1/reviews: 200')
  t.match(below.body, /"url":\s*"\/api\/v1\/products\/1\/reviews"/, "the upstream's answer is shown")
  t.equal(upstream.seen[0]?.url, '/api/v1/products/1/reviews', 'the upstream received the path exactly, / not encoded')
  t.equal(upstream.seen[0]?.headers['x-consumer-id'], token.id, 'as the token entered in Authorize')

  const prefix = await tryOut('proxyGetApiV1ProductsPrefix', null)
  t.equal(prefix.status, '200', 'GET /api/v1/products: 200')
  t.match(prefix.body, /"url":\s*"\/api\/v1\/products"/, "the upstream's answer is shown")
  t.equal(upstream.seen[1]?.url, '/api/v1/products', 'the upstream received the prefix itself')
  t.equal(upstream.seen.length, 2, 'one upstream request per Execute')
  t.same(consoleErrors, [], 'no console errors (CSP violations would show here)')
  await mkdir('test-output', { recursive: true })
  await page.screenshot({ path: 'test-output/docs-try-it-out.png', fullPage: false })
})
