// GET /metrics against a real gateway, Redis and upstreams: counters and histograms move with
// requests, label values stay bounded (never a raw path or query), names follow Prometheus rules.
import t from 'tap'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { register as globalRegistry } from 'prom-client'
import { freePort, sharedRedis } from './helpers/redis.js'
import { Upstream } from './helpers/upstream.js'
import { CALM, startGateway, testConfig } from './helpers/gateway.js'
import { metricTypes, parseSamples, valueOf } from './helpers/prometheus.js'
import { TokenStore } from '../src/tokens/store.js'
import { buildApp } from '../src/app.js'

const redis = await sharedRedis()
const upstream = await new Upstream().start()
const refusedPort = await freePort() // nothing listens there: the upstream refuses
const gw = await startGateway({
  ...CALM,
  REDIS_URL: redis.url,
  ROUTES: `/api/v1/users=${upstream.url},/api/v1/down=http://127.0.0.1:${refusedPort}`
})
const client = new Redis(redis.url)
const token = await new TokenStore(client, 'portcullis:').create({ rate_limit: 1_000_000, allowed_routes: ['/*'] })
const auth = { authorization: `Bearer ${token.api_key}` }
t.teardown(async () => {
  client.disconnect()
  await gw.app.close()
  await upstream.close()
  await redis.close()
})

async function scrape (url = gw.url): Promise<string> {
  const res = await request(url + '/metrics')
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return await res.body.text()
}

async function send (path: string, method = 'GET'): Promise<number> {
  const res = await request(gw.url + path, { method: method as 'GET', headers: auth })
  await res.body.dump()
  return res.statusCode
}

t.test('/metrics is the Prometheus text format with the registry content type', async (t) => {
  const res = await request(gw.url + '/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4; charset=utf-8/)
  const text = await res.body.text()
  t.match(text, /^# HELP portcullis_http_requests_total /m)
})

t.test('requests, upstream errors and gateway errors are counted by route, method and class', async (t) => {
  const before = await scrape()
  t.equal(await send('/api/v1/users/1'), 200)
  t.equal(await send('/api/v1/users/2', 'POST'), 200)
  t.equal(await send('/nowhere/at/all'), 404)
  t.equal(await send('/api/v1/down/x'), 502)
  t.equal(await send('/api/v1/users/3', 'PROPFIND'), 200) // proxied; an unusual method is OTHER
  const after = await scrape()
  const delta = (name: string, labels: Record<string, string>): number => valueOf(after, name, labels) - valueOf(before, name, labels)

  const req = 'portcullis_http_requests_total'
  t.equal(delta(req, { route: '/api/v1/users', method: 'GET', status_class: '2xx' }), 1)
  t.equal(delta(req, { route: '/api/v1/users', method: 'POST', status_class: '2xx' }), 1)
  t.equal(delta(req, { route: '/api/v1/users', method: 'OTHER', status_class: '2xx' }), 1)
  t.equal(delta(req, { route: 'unmatched', method: 'GET', status_class: '4xx' }), 1)
  t.equal(delta(req, { route: '/api/v1/down', method: 'GET', status_class: '5xx' }), 1)
  t.equal(delta(req, { route: '/metrics', method: 'GET', status_class: '2xx' }), 1, 'the first scrape itself')
  t.equal(delta('portcullis_upstream_errors_total', { route: '/api/v1/down', kind: 'refused' }), 1)
  t.equal(delta('portcullis_upstream_errors_total', { route: '/api/v1/users' }), 0)
  t.equal(delta('portcullis_gateway_errors_total', { route: 'unmatched', code: 'ROUTE_NOT_FOUND' }), 1)
  t.equal(delta('portcullis_gateway_errors_total', { route: '/api/v1/down', code: 'UPSTREAM_ERROR' }), 1)
  t.equal(delta('portcullis_gateway_errors_total', { route: '/api/v1/users' }), 0, 'upstream answers are not gateway errors')
  t.equal(delta('portcullis_upstream_duration_seconds_count', { route: '/api/v1/users' }), 3)
  t.equal(delta('portcullis_http_request_duration_seconds_count', { route: '/api/v1/users', method: 'GET' }), 1)
  t.ok(delta('portcullis_upstream_duration_seconds_sum', { route: '/api/v1/users' }) > 0)
})

t.test('an upstream 5xx is counted as 5xx, not as an upstream or gateway error', async (t) => {
  const saved = upstream.handler
  upstream.handler = (_req, res) => { res.writeHead(503, { 'content-type': 'application/json' }); res.end('{"code":"UPSTREAM_SAYS_NO"}') }
  t.teardown(() => { upstream.handler = saved })
  const before = await scrape()
  t.equal(await send('/api/v1/users/9'), 503)
  const after = await scrape()
  t.equal(valueOf(after, 'portcullis_http_requests_total', { route: '/api/v1/users', status_class: '5xx' }) -
    valueOf(before, 'portcullis_http_requests_total', { route: '/api/v1/users', status_class: '5xx' }), 1)
  t.notMatch(after, /UPSTREAM_SAYS_NO/)
})

t.test('a 429 and a 401 are counted per route and code, and by the auth and rate-limit decisions', async (t) => {
  const tight = await new TokenStore(client, 'portcullis:').create({ rate_limit: 1, burst: 1, window_seconds: 3600, allowed_routes: ['/*'] })
  const before = await scrape()
  const call = async (headers: Record<string, string>): Promise<number> => {
    const res = await request(gw.url + '/api/v1/users/1', { headers })
    await res.body.dump()
    return res.statusCode
  }
  t.equal(await call({ authorization: `Bearer ${tight.api_key}` }), 200)
  t.equal(await call({ authorization: `Bearer ${tight.api_key}` }), 429)
  t.equal(await call({}), 401)
  const after = await scrape()
  const delta = (name: string, labels: Record<string, string>): number => valueOf(after, name, labels) - valueOf(before, name, labels)
  t.equal(delta('portcullis_gateway_errors_total', { route: '/api/v1/users', code: 'RATE_LIMITED' }), 1)
  t.equal(delta('portcullis_gateway_errors_total', { route: '/api/v1/users', code: 'TOKEN_MISSING' }), 1)
  t.equal(delta('portcullis_ratelimit_decisions_total', { result: 'limited' }), 1)
  t.equal(delta('portcullis_auth_decisions_total', { result: 'missing' }), 1)
  t.equal(delta('portcullis_redis_command_duration_seconds_count', {}), 2, 'one script call per authenticated request')
  t.notMatch(after, tight.id, 'the token id is no label value')
})

t.test('histograms expose their buckets, and the default process metrics are there', async (t) => {
  await send('/healthz')
  const text = await scrape()
  const types = metricTypes(text)
  for (const h of ['portcullis_http_request_duration_seconds', 'portcullis_upstream_duration_seconds', 'portcullis_redis_command_duration_seconds']) {
    t.equal(types.get(h), 'histogram', h)
  }
  t.match(text, /^portcullis_http_request_duration_seconds_bucket\{le="0\.005",route="\/healthz",method="GET"\} \d+$/m)
  t.match(text, /^portcullis_http_request_duration_seconds_bucket\{le="\+Inf",route="\/healthz",method="GET"\} [1-9]\d*$/m)
  t.match(text, /^portcullis_process_cpu_user_seconds_total \d/m)
  t.match(text, /^portcullis_nodejs_eventloop_lag_seconds \d/m)
  t.match(text, /^portcullis_process_resident_memory_bytes \d/m)
  t.equal(valueOf(text, 'portcullis_auth_decisions_total', { result: 'expired' }) >= 0, true)
  t.match(text, /^portcullis_ratelimit_decisions_total\{result="limited"\} \d+$/m, 'decision series exist from the start')
})

t.test('no label value carries a raw path, query string or token', async (t) => {
  t.equal(await send('/api/v1/users/12345?q=secret'), 200)
  t.equal(await send('/zz98765/deep?token=hunter2'), 404)
  t.equal(await send('/api/v1/users/a%2Fsecret2'), 400) // BAD_PATH: the target is refused, not labelled
  const text = await scrape()
  const allowedRoutes = new Set(['/api/v1/users', '/api/v1/down', '/healthz', '/readyz', '/metrics', '/docs', '/admin', 'unmatched'])
  for (const s of parseSamples(text)) {
    for (const [k, v] of Object.entries(s.labels)) {
      for (const bad of ['12345', 'secret', '98765', 'hunter2', token.api_key, token.id, '%2F']) {
        if (v.includes(bad)) t.fail(`${s.name} label ${k}="${v}" contains ${bad}`)
      }
      if (k === 'route' && !allowedRoutes.has(v)) t.fail(`unexpected route label ${v}`)
    }
  }
  t.notMatch(text, /secret|hunter2/)
  t.notMatch(text, token.api_key)
})

t.test('metric names follow the Prometheus conventions', async (t) => {
  const types = metricTypes(await scrape())
  t.ok(types.size > 20)
  for (const [name, type] of types) {
    t.match(name, /^portcullis_[a-z0-9_]+$/, `${name}: prefixed, snake_case`)
    if (type === 'counter') t.match(name, /_total$/, `${name}: a counter ends in _total`)
    if (type === 'histogram') t.match(name, /_seconds$/, `${name}: a duration histogram is in seconds`)
    t.notMatch(name, /_(ms|milliseconds|kb|mb|percent)(_|$)/, `${name}: base units`)
  }
})

t.test('helpers for the auth and rate-limit plugins map to fixed result values', async (t) => {
  const m = gw.app.metrics
  const before = await scrape()
  m.authDecision('allowed')
  m.authDecision('TOKEN_EXPIRED')
  m.authDecision('ROUTE_FORBIDDEN')
  m.authDecision('something a careless caller passed')
  m.rateLimitDecision('limited')
  m.rateLimitDecision('store_unavailable')
  m.observeRedis(0.0004, true)
  m.observeRedis(0.3, false)
  const after = await scrape()
  const delta = (name: string, labels: Record<string, string> = {}): number => valueOf(after, name, labels) - valueOf(before, name, labels)
  t.equal(delta('portcullis_auth_decisions_total', { result: 'allowed' }), 1)
  t.equal(delta('portcullis_auth_decisions_total', { result: 'expired' }), 1)
  t.equal(delta('portcullis_auth_decisions_total', { result: 'forbidden' }), 1)
  t.equal(delta('portcullis_auth_decisions_total', { result: 'other' }), 1)
  t.equal(delta('portcullis_ratelimit_decisions_total', { result: 'limited' }), 1)
  t.equal(delta('portcullis_ratelimit_decisions_total', { result: 'store_unavailable' }), 1)
  t.equal(delta('portcullis_redis_command_duration_seconds_count'), 2)
  t.equal(delta('portcullis_redis_command_duration_seconds_bucket', { le: '0.0005' }), 1)
  t.equal(delta('portcullis_redis_errors_total'), 1)
})

t.test('each app has its own registry; nothing goes to the global one', async (t) => {
  const other = await buildApp(testConfig({ REDIS_URL: redis.url, ROUTES: `/api/v1/users=${upstream.url}` }))
  t.teardown(() => other.close())
  const res = await other.inject({ method: 'GET', url: '/metrics' })
  t.equal(valueOf(res.body, 'portcullis_http_requests_total'), 0, 'a fresh app starts from zero')
  t.notMatch(res.body, /\/api\/v1\/down/, 'and knows only its own routes')
  t.ok(valueOf(await scrape(), 'portcullis_http_requests_total') > 5, 'the first app kept its counts')
  t.notMatch(await globalRegistry.metrics(), /portcullis_/)
})
