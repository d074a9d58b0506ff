// Load shedding and readiness for real: a heap threshold the process always exceeds, and a
// redis-server killed under a running gateway (and started again).
import t from 'tap'
import { request } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import { RedisServer, sharedRedis } from './helpers/redis.js'
import { Upstream } from './helpers/upstream.js'
import { CALM, startGateway, type TestGateway } from './helpers/gateway.js'
import { createTestToken } from './helpers/tokens.js'
import { WsUpstream } from './helpers/ws-upstream.js'
import { rawHandshake } from './helpers/ws-client.js'
import { rawRequest, header, json } from './helpers/raw-http.js'
import { until } from './helpers/until.js'

const upstream = await new Upstream().start()
t.teardown(() => upstream.close())

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: Record<string, unknown> }

async function get (gw: TestGateway, path: string): Promise<Answer> {
  const res = await request(gw.url + path)
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body: text.startsWith('{') ? JSON.parse(text) as Record<string, unknown> : { text } }
}

t.test('over a heap threshold: proxied requests are shed with 503, probes and metrics still answer', async (t) => {
  const redis = await sharedRedis()
  // CALM: on a loaded machine a slow PING or a long event-loop stall would be reported first.
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${upstream.url}`, PRESSURE_MAX_HEAP_USED_BYTES: '1' })
  t.teardown(async () => { await gw.app.close(); await redis.close() })
  const seenBefore = upstream.seen.length

  t.ok(await until(async () => (await get(gw, '/api/v1/users/1')).status === 503, 10_000, 100), 'shedding starts within the sampling interval')
  const shed = await get(gw, '/api/v1/users/1')
  t.equal(shed.status, 503)
  t.equal(shed.body.code, 'UNDER_PRESSURE')
  t.match(shed.body, { statusCode: 503, error: 'Service Unavailable', message: /heapUsedBytes/ })
  t.match(shed.headers['retry-after'], /^\d+$/)
  t.equal(upstream.seen.length, seenBefore, 'a shed request never reaches the upstream')

  t.same((await get(gw, '/healthz')).body, { status: 'ok' })
  const ready = await get(gw, '/readyz')
  t.equal(ready.status, 503)
  t.match(ready.body, { status: 'unavailable', reason: /^under_pressure: heapUsedBytes \d+$/ })
  const metrics = await get(gw, '/metrics')
  t.equal(metrics.status, 200, '/metrics is exempt: a scrape shows the shedding')
  t.match(metrics.body.text, /portcullis_gateway_errors_total\{route="\/api\/v1\/users",code="UNDER_PRESSURE"\} [1-9]/)
})

t.test('over a heap threshold: a WebSocket upgrade is shed too, before its token is checked, and never reaches the upstream', async (t) => {
  const server = await new RedisServer().start()
  const ws = await new WsUpstream().start()
  const token = await createTestToken(server.url)
  const gw = await startGateway({ ...CALM, REDIS_URL: server.url, ROUTES: `/ws=${ws.url}`, PRESSURE_MAX_HEAP_USED_BYTES: '1' })
  t.teardown(async () => { await gw.app.close(); await ws.close(); await server.close() })
  const admin = server.client()
  t.teardown(() => admin.disconnect())

  t.ok(await until(async () => (await get(gw, '/ws/plain')).status === 503, 10_000, 100), 'shedding has started (a plain request is shed)')
  await admin.config('RESETSTAT')
  const res = await rawRequest(gw.url, rawHandshake('/ws/chat', [`Authorization: ${token.bearer}`, 'X-Request-Id: shed-ws-1']))
  t.equal(res.status, 503)
  t.match(json(res), { statusCode: 503, code: 'UNDER_PRESSURE', message: /heapUsedBytes/ })
  t.match(header(res, 'retry-after'), /^\d+$/)
  t.equal(header(res, 'x-request-id'), 'shed-ws-1')
  t.equal(ws.upgrades.length, 0, 'no upgrade reached the upstream')
  t.equal(ws.connections, 0, 'no connection was opened to it')
  const stats = await admin.info('commandstats')
  t.notMatch(stats, /cmdstat_eval(sha)?:/, 'no token check or rate-limit call was made for it')
})

t.test('Redis stopped: /readyz is 503 with a redis reason, proxied requests 503; back to ready when it returns', async (t) => {
  const server = await new RedisServer().start()
  const gw = await startGateway({ ...CALM, REDIS_URL: server.url, ROUTES: `/api/v1/users=${upstream.url}` })
  t.teardown(async () => { await gw.app.close(); await server.close() })
  t.match(await get(gw, '/readyz'), { status: 200, body: { status: 'ready' } })

  await server.stop()
  const reasons = new Set<string>()
  // Both moments count: before and after the once-a-second health check has noticed.
  const deadline = Date.now() + 3000
  while (Date.now() < deadline) {
    const ready = await get(gw, '/readyz')
    t.equal(ready.status, 503, 'not ready while Redis is down')
    reasons.add(String(ready.body.reason))
    await sleep(100)
  }
  for (const reason of reasons) t.match(reason, /^redis/, `reason "${reason}" names Redis`)
  const proxied = await get(gw, '/api/v1/users/1')
  t.equal(proxied.status, 503)
  t.equal(proxied.body.code, 'STORE_UNAVAILABLE')
  t.match(proxied.headers['retry-after'], /^\d+$/)
  t.equal((await get(gw, '/healthz')).status, 200, 'liveness does not depend on Redis')

  await server.start()
  t.ok(await until(async () => (await get(gw, '/readyz')).status === 200, 15_000, 100), 'ready again once Redis answers')
})
