// MANAGEMENT_PORT (docs/operations.md): /metrics, /docs and /admin only on the management
// listener, the proxy only on the proxy listener, probes on both; raw requests on real sockets,
// hostile spellings included; one registry, one drain; a real `serve` with WORKERS=2.
import t from 'tap'
import { sharedRedis, freePort, RedisServer } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { createTestToken } from '../helpers/tokens.js'
import { CALM, startGateway } from '../helpers/gateway.js'
import { RawConnection, rawRequest, rawGet, header, json } from '../helpers/raw-http.js'
import { makeTestCertificate } from '../helpers/tls.js'
import { h1Request, h2Request } from '../helpers/tls-clients.js'
import { spawnServe, exitWithin, waitForOk, killHard, type ServeProcess } from '../helpers/process.js'

const redis = await sharedRedis()
const token = await createTestToken(redis.url)
const ADMIN = 'admin-token-for-management-test'
const echo = await new Upstream().start()
const running: ServeProcess[] = []
t.teardown(async () => {
  for (const p of running) await killHard(p)
  await echo.close()
  await redis.close()
})

const auth = (bearer: string): string[] => [`Authorization: ${bearer}`]
const adminAuth = auth(`Bearer ${ADMIN}`)

t.test('with MANAGEMENT_PORT each listener serves only its own surface', async (t) => {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}`, ADMIN_TOKEN: ADMIN, MANAGEMENT_PORT: '0' })
  t.teardown(() => gw.app.close())
  const mgmt = gw.managementUrl
  if (mgmt === null) throw new Error('no management listener')
  t.not(mgmt, gw.url, 'two different ports')

  for (const [target, headers] of [['/metrics', []], ['/docs', []], ['/docs/json', []], ['/docs/static/index.html', []],
    ['/docs/yaml', []], ['/admin/tokens', adminAuth], ['/admin/tokens/abc', adminAuth]] as Array<[string, string[]]>) {
    const res = await rawRequest(gw.url, rawGet(target, headers))
    t.equal(res.status, 404, `proxy port: ${target} is 404`)
    t.equal(json(res).code, 'NOT_FOUND', `proxy port: ${target} answers NOT_FOUND`)
  }
  const created = await rawRequest(gw.url, `POST /admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`)
  t.equal(json(created).code, 'NOT_FOUND', 'proxy port: POST /admin/tokens is refused before its body is looked at')

  // Spellings that a lenient router or a path normaliser might map to a management route.
  const tricks = ['/metrics/', '/METRICS', '//metrics', '/./metrics', '/docs/../metrics', '/api/../metrics',
    '/admin%2ftokens', '/admin%2Ftokens', '/%6detrics', '/metrics;x', '/metrics%00', '/docs%2fjson', '/Docs/json',
    '/metrics?format=text', '/metrics#x', 'http://x/metrics', '/admin/tokens/', '/admin//tokens', '/ADMIN/tokens', '/docs/', '/docs/static/../json']
  for (const target of tricks) {
    const res = await rawRequest(gw.url, rawGet(target, adminAuth))
    const body = res.body.toString('utf8')
    t.ok(res.status === 400 || res.status === 404, `proxy port: ${target} → ${res.status} ${body.slice(0, 60)}`)
    t.notMatch(body, /portcullis_http_requests_total|"openapi"|swagger|"tokens"/i, `proxy port: ${target} reveals nothing`)
  }

  for (const target of ['/healthz', '/readyz']) {
    t.equal((await rawRequest(gw.url, rawGet(target))).status, 200, `proxy port: ${target} answers`)
    t.equal((await rawRequest(mgmt, rawGet(target))).status, 200, `management port: ${target} answers`)
  }
  const proxied = await rawRequest(gw.url, rawGet('/api/x', auth(token.bearer)))
  t.equal(proxied.status, 200, 'proxy port: the proxy works')
  const seenBefore = echo.seen.length

  const onMgmt = await rawRequest(mgmt, rawGet('/api/x', auth(token.bearer)))
  t.equal(onMgmt.status, 404, 'management port: the proxy route is 404')
  t.equal(json(onMgmt).code, 'NOT_FOUND')
  for (const target of ['/nowhere', '/metrics/', '/METRICS', '/api']) {
    const res = await rawRequest(mgmt, rawGet(target, auth(token.bearer)))
    t.ok(res.status === 404 || res.status === 400, `management port: ${target} → ${res.status}`)
  }
  t.equal(echo.seen.length, seenBefore, 'nothing reached the upstream through the management port')

  const metrics = await rawRequest(mgmt, rawGet('/metrics'))
  t.equal(metrics.status, 200, 'management port: /metrics')
  const text = metrics.body.toString('utf8')
  t.match(text, /portcullis_http_requests_total\{route="\/api",method="GET",status_class="2xx"\} 1\b/, 'one registry: the proxy listener\'s request is counted')
  t.match(text, /portcullis_gateway_errors_total\{route="\/metrics",code="NOT_FOUND"\} \d+/, 'refusals on the proxy port are counted under the route they asked for')
  const doc = await rawRequest(mgmt, rawGet('/docs/json'))
  t.equal(doc.status, 200, 'management port: /docs/json')
  t.ok((json(doc).paths as Record<string, unknown>)['/admin/tokens'] !== undefined, 'the admin API is documented (ADMIN_TOKEN is set)')
  const ui = await rawRequest(mgmt, rawGet('/docs'))
  t.equal(ui.status, 200, 'management port: the Swagger UI')
  const list = await rawRequest(mgmt, rawGet('/admin/tokens', adminAuth))
  t.equal(list.status, 200, 'management port: the admin API')
  t.equal((await rawRequest(mgmt, rawGet('/admin/tokens'))).status, 401, 'management port: the admin API still wants its token')

  // Draining is one state for both listeners.
  const keep = await RawConnection.open(mgmt)
  t.teardown(() => keep.close())
  t.equal((await keep.request(rawGet('/readyz'))).status, 200)
  gw.app.lifecycle.beginDraining()
  for (const url of [gw.url, mgmt]) {
    const r = await rawRequest(url, rawGet('/readyz'))
    t.equal(r.status, 503, `${url === mgmt ? 'management' : 'proxy'} port: readiness 503 while draining`)
    t.same(json(r), { status: 'unavailable', reason: 'shutting_down' })
    t.equal(header(r, 'connection'), 'close')
  }
  await gw.app.close()
  t.ok(await keep.waitClosed(5000), 'app.close() closes the management listener\'s keep-alive connections')
  for (const url of [gw.url, mgmt]) {
    const refused = await RawConnection.open(url).then((c) => { c.close(); return false }, () => true)
    t.ok(refused, `${url === mgmt ? 'management' : 'proxy'} port: closed with the app`)
  }
})

t.test('without MANAGEMENT_PORT one listener serves everything, as before', async (t) => {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}`, ADMIN_TOKEN: ADMIN })
  t.teardown(() => gw.app.close())
  t.equal(gw.managementUrl, null, 'no management listener')
  for (const [target, headers] of [['/metrics', []], ['/docs/json', []], ['/admin/tokens', adminAuth], ['/healthz', []], ['/api/x', auth(token.bearer)]] as Array<[string, string[]]>) {
    t.equal((await rawRequest(gw.url, rawGet(target, headers))).status, 200, `${target} answers on the one port`)
  }
})

t.test('serve with MANAGEMENT_PORT and WORKERS=2: summed metrics on the management port, both ports close on SIGTERM', async (t) => {
  const port = await freePort()
  const mport = await freePort()
  const p = spawnServe({ ...CALM, PORT: String(port), HOST: '127.0.0.1', MANAGEMENT_PORT: String(mport), REDIS_URL: redis.url, LOG_LEVEL: 'info', ROUTES: `/api=${echo.url}`, WORKERS: '2', SHUTDOWN_GRACE_MS: '5000' })
  running.push(p)
  const url = `http://127.0.0.1:${port}`
  const mgmt = `http://127.0.0.1:${mport}`
  if (!await waitForOk(mgmt + '/readyz', 20_000)) throw new Error(`serve did not come up: ${p.stderr()}${p.stdout()}`)
  for (let i = 0; i < 200 && (p.stdout().match(/management listener/g) ?? []).length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal((p.stdout().match(/management listener/g) ?? []).length, 2, 'both workers listen on the management port')
  const started = p.stdout().split('\n').filter((l) => l.includes('"portcullis started"')).map((l) => JSON.parse(l) as Record<string, unknown>)
  t.equal(started.length, 1, 'one start-up line')
  t.match(started[0], { address: url, management: `127.0.0.1:${mport}` }, 'it names the proxy address and the management listener')

  for (let i = 0; i < 6; i++) t.equal((await rawRequest(url, rawGet(`/api/${i}`, auth(token.bearer)))).status, 200)
  t.equal(json(await rawRequest(url, rawGet('/metrics'))).code, 'NOT_FOUND', 'proxy port: /metrics is 404 in the workers too')
  const text = (await rawRequest(mgmt, rawGet('/metrics'))).body.toString('utf8')
  t.match(text, /^portcullis_workers 2$/m, 'the scrape sums both workers')
  t.match(text, /portcullis_http_requests_total\{route="\/api",method="GET",status_class="2xx"\} 6\b/, 'every proxied request, whichever worker served it')

  p.proc.kill('SIGTERM')
  t.same(await exitWithin(p, 10_000), { code: 0, signal: null }, 'exit 0')
  for (const u of [url, mgmt]) {
    const refused = await RawConnection.open(u).then((c) => { c.close(); return false }, () => true)
    t.ok(refused, `${u} is closed`)
  }
})

t.test('MANAGEMENT_PORT in use: one line naming MANAGEMENT_PORT, exit 1', async (t) => {
  const taken = await new Upstream().start()
  t.teardown(() => taken.close())
  const port = await freePort()
  const p = spawnServe({ ...CALM, PORT: String(port), HOST: '127.0.0.1', MANAGEMENT_PORT: new URL(taken.url).port, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}` })
  running.push(p)
  const exit = await exitWithin(p, 20_000)
  t.same(exit, { code: 1, signal: null }, 'exit 1')
  t.match(p.stderr(), /the port is in use \(MANAGEMENT_PORT\)/, p.stderr())
})

t.test('app.close() while a management request is in flight on a keep-alive connection: it is answered, then everything closes', async (t) => {
  const frozen = await new RedisServer().start()
  t.teardown(async () => { frozen.resume(); await frozen.close() })
  const gw = await startGateway({ ...CALM, REDIS_COMMAND_TIMEOUT_MS: '1000', REDIS_URL: frozen.url, ROUTES: `/api=${echo.url}`, ADMIN_TOKEN: ADMIN, MANAGEMENT_PORT: '0' })
  const c = await RawConnection.open(gw.managementUrl ?? '')
  t.teardown(() => c.close())
  frozen.pause() // the admin list now waits for REDIS_COMMAND_TIMEOUT_MS
  const answer = c.request(rawGet('/admin/tokens', adminAuth))
  await new Promise((resolve) => setTimeout(resolve, 200))
  const started = Date.now()
  const closed = gw.app.close()
  const res = await answer
  frozen.resume()
  t.equal(res.status, 503, 'the in-flight admin request is answered (STORE_UNAVAILABLE: Redis was frozen)')
  t.equal(header(res, 'connection'), 'close', 'with Connection: close')
  t.ok(await c.waitClosed(5000), 'its keep-alive connection is closed after it')
  await closed
  t.ok(Date.now() - started < 5000, `app.close() resolved in ${Date.now() - started} ms, not after the 72 s keep-alive timeout`)
})

t.test('TLS and HTTP/2 on the proxy listener: the management listener stays plain HTTP, the guard holds on both protocols', async (t) => {
  const cert = makeTestCertificate()
  t.teardown(() => { cert.remove() })
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}`, MANAGEMENT_PORT: '0', TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile })
  t.teardown(() => gw.app.close())
  for (const path of ['/metrics', '/docs/json', '/admin/tokens']) {
    const h2 = await h2Request(gw.url, cert.cert, { path })
    t.equal(h2.status, 404, `h2 ${path}: 404`)
    t.equal(JSON.parse(h2.body.toString('utf8')).code, 'NOT_FOUND')
    t.equal((await h1Request(gw.url, cert.cert, { path })).status, 404, `https/1.1 ${path}: 404`)
  }
  t.equal((await h2Request(gw.url, cert.cert, { path: '/api/x', headers: { authorization: token.bearer } })).status, 200, 'h2: the proxy works')
  const metrics = await rawRequest(gw.managementUrl ?? '', rawGet('/metrics'))
  t.equal(metrics.status, 200, 'management: /metrics over plain HTTP')
  t.match(metrics.body.toString('utf8'), /portcullis_http_requests_total\{route="\/api",method="GET",status_class="2xx"\} 1\b/, 'the h2 request is counted in the one registry')
  t.equal((await rawRequest(gw.managementUrl ?? '', rawGet('/readyz'))).status, 200)
})
