// The request line answers an operator's questions (docs/observability.md): which of the
// gateway's own answers (`code`), from which client (`remoteAddress`, TRUST_PROXY honoured), on
// which route (the metrics' label, `/admin` and `/docs` included); still one line per request.
import t from 'tap'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { createTestToken } from '../helpers/tokens.js'
import { CALM, startGateway, type TestGateway } from '../helpers/gateway.js'
import { rawRequest, rawGet } from '../helpers/raw-http.js'
import { directInfoWriter } from '../../src/log-stream.js'
import { REQUEST_LINE_KEYS, requestLineProps } from '../../src/lib/request-line.js'

const redis = await sharedRedis()
const token = await createTestToken(redis.url)
const echo = await new Upstream().start()
const ADMIN = 'admin-token-for-request-log-test'
t.teardown(async () => { await echo.close(); await redis.close() })

/** The request lines written so far, parsed. */
const requestLines = (gw: TestGateway): Array<Record<string, unknown>> => gw.logs.records().filter((r) => r.msg === 'request')

/** Waits until `n` request lines were written (onResponse runs after the answer is sent). */
async function lines (gw: TestGateway, n: number): Promise<Array<Record<string, unknown>>> {
  for (let i = 0; i < 200 && requestLines(gw).length < n; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  return requestLines(gw)
}

t.test('code, remoteAddress and route on every request line; one line per request', async (t) => {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ADMIN_TOKEN: ADMIN, ROUTES: `/api=${echo.url},/down=http://127.0.0.1:9`, CIRCUIT_FAILURE_THRESHOLD: '1', CIRCUIT_COOLDOWN_MS: '60000' })
  t.teardown(() => gw.app.close())
  const xff = ['X-Forwarded-For: 203.0.113.9']
  const calls: Array<[string, string[], number, string | undefined, string | null]> = [
    ['/api/x', [`Authorization: ${token.bearer}`, ...xff], 200, undefined, '/api'],
    ['/api/x', xff, 401, 'TOKEN_MISSING', '/api'],
    ['/down/x', [`Authorization: ${token.bearer}`], 502, 'UPSTREAM_ERROR', '/down'],
    ['/down/x', [`Authorization: ${token.bearer}`], 503, 'CIRCUIT_OPEN', '/down'],
    ['/nowhere', [], 404, 'ROUTE_NOT_FOUND', null],
    ['/admin/tokens', [`Authorization: Bearer ${ADMIN}`], 200, undefined, '/admin'],
    ['/admin/tokens/abc', [], 401, 'ADMIN_UNAUTHORIZED', '/admin'],
    ['/docs/json', [], 200, undefined, '/docs'],
    ['/docs', [], 200, undefined, '/docs'],
    ['/metrics', [], 200, undefined, '/metrics'],
    ['/healthz', [], 200, undefined, '/healthz']
  ]
  for (const [target, headers, status] of calls) t.equal((await rawRequest(gw.url, rawGet(target, headers))).status, status, `${target} → ${status}`)
  const recs = await lines(gw, calls.length)
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(requestLines(gw).length, calls.length, 'exactly one request line per request')
  calls.forEach(([target, , status, code, route], i) => {
    const r = recs[i] ?? {}
    t.equal(r.status, status, `${target}: status`)
    t.equal(r.code, code, `${target}: code ${code ?? '(none: not the gateway\'s own answer)'}`)
    t.equal(r.route, route, `${target}: route ${String(route)}, as the metrics label it`)
    t.equal(r.remoteAddress, '127.0.0.1', `${target}: remoteAddress is the peer; X-Forwarded-For is not trusted by default`)
    t.equal(r.level, 30, `${target}: info`)
  })
  t.equal(recs[5]?.path, '/admin/tokens', 'the admin line keeps its route pattern as path')
  t.equal(recs[6]?.path, '/admin/tokens/:id', 'never the id a client put in the path')
})

t.test('TRUST_PROXY=true: remoteAddress is the client X-Forwarded-For names', async (t) => {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}`, TRUST_PROXY: 'true' })
  t.teardown(() => gw.app.close())
  await rawRequest(gw.url, rawGet('/api/x', [`Authorization: ${token.bearer}`, 'X-Forwarded-For: 203.0.113.9']))
  await rawRequest(gw.url, rawGet('/api/x', [`Authorization: ${token.bearer}`]))
  const [proxied, direct] = await lines(gw, 2)
  t.equal(proxied?.remoteAddress, '203.0.113.9', 'the forwarded client')
  t.equal(direct?.remoteAddress, '127.0.0.1', 'without the header: the peer')
})

t.test('with MANAGEMENT_PORT the line says which listener answered', async (t) => {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}`, MANAGEMENT_PORT: '0' })
  t.teardown(() => gw.app.close())
  await rawRequest(gw.url, rawGet('/metrics'))
  await rawRequest(gw.managementUrl ?? '', rawGet('/metrics'))
  const [refused, served] = await lines(gw, 2)
  t.match(refused, { status: 404, code: 'NOT_FOUND', route: '/metrics' }, 'proxy port: refused, labelled like the metrics')
  t.notOk('listener' in (refused ?? {}), 'the proxy listener is the default, not written')
  t.match(served, { status: 200, route: '/metrics', listener: 'management' })
})

t.test('the line as written: pino\'s shape, and client strings escaped so it parses back', async (t) => {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}`, TRUST_PROXY: 'true' })
  t.teardown(() => gw.app.close())
  const hostileAddress = '"a\\b c\'' // Node's parser refuses control bytes in a header, not these
  await rawRequest(gw.url, rawGet('/api/x', [`Authorization: ${token.bearer}`, 'X-Request-Id: line-shape-1']))
  await rawRequest(gw.url, rawGet('/nowhere/a"b\\c\'{|}', [`X-Forwarded-For: ${hostileAddress}`]))
  await lines(gw, 2)
  const raw = gw.logs.lines.filter((l) => l.includes('"msg":"request"'))
  t.equal(raw.length, 2)
  t.match(raw[0], /^\{"level":30,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","pid":\d+,"hostname":"[^"]*","reqId":"line-shape-1","method":"GET","path":"\/api\/x","route":"\/api","status":200,"remoteAddress":"127\.0\.0\.1","ms":[\d.]+,"consumer":"[^"]+","rateLimit":"allowed","msg":"request"\}$/, 'pino\'s order, absent fields left out')
  const refused = JSON.parse(raw[1] ?? '') as Record<string, unknown>
  t.same(Object.keys(refused), ['level', 'time', 'pid', 'hostname', 'reqId', 'method', 'path', 'route', 'status', 'code', 'remoteAddress', 'ms', 'msg'])
  t.equal(refused.path, '/nowhere/a"b\\c\'{|}', 'the path reads back as the client sent it')
  t.equal(refused.remoteAddress, hostileAddress, 'so does a forwarded address')
  t.not(directInfoWriter(gw.app.log, 'request', REQUEST_LINE_KEYS, requestLineProps), null, 'written past pino\'s serialiser, not through app.log.info')
})

t.test('LOG_LEVEL=warn writes no request line; LOG_FORMAT=pretty formats it', async (t) => {
  const quiet = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}`, LOG_LEVEL: 'warn' })
  t.teardown(() => quiet.app.close())
  const pretty = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}`, LOG_FORMAT: 'pretty' })
  t.teardown(() => pretty.app.close())
  for (const gw of [quiet, pretty]) t.equal((await rawRequest(gw.url, rawGet('/api/x', [`Authorization: ${token.bearer}`, 'X-Request-Id: pretty-1']))).status, 200)
  for (let i = 0; i < 200 && !pretty.logs.lines.some((l) => l.includes('request')); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.not(directInfoWriter(pretty.app.log, 'request', REQUEST_LINE_KEYS, requestLineProps), null, 'pretty: the direct path too')
  t.notOk(quiet.logs.lines.some((l) => l.includes('request')), 'no request line at warn')
  t.match(pretty.logs.lines.find((l) => l.includes('request')), /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}request reqId=pretty-1 method=GET path=\/api\/x route=\/api status=200 remoteAddress=127\.0\.0\.1 ms=[\d.]+ consumer=\S+ rateLimit=allowed$/)
})
