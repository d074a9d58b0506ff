// The exact text of the per-request metrics, and of their sum over workers, against a golden file
// made by the implementation that recorded through prom-client's own Counter and Histogram: the
// cheap recording (src/lib/metric-series.ts) must not change one byte of what a scraper reads,
// including the order of series and the floating-point sums. A deliberate change to the metrics
// rewrites the file: UPDATE_GOLDEN=1 npx tap test/metrics-exposition.test.ts, then read the diff.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { AggregatorRegistry } from 'prom-client'
import type { FastifyRequest } from 'fastify'
import { GatewayMetrics, type DecisionState } from '../plugins/metrics.js'

const GOLDEN = new URL('./fixtures/metrics-exposition.prom', import.meta.url)
const RELEVANT = new Set([
  'portcullis_http_requests_total',
  'portcullis_http_request_duration_seconds',
  'portcullis_upstream_duration_seconds',
  'portcullis_auth_decisions_total',
  'portcullis_ratelimit_decisions_total',
  'portcullis_redis_command_duration_seconds',
  'portcullis_upstream_errors_total',
  'portcullis_gateway_errors_total'
])

const routes = ['/api/v1/users', '/api/v1/orders', '/'].map((prefix) => ({ prefix, upstream: 'http://127.0.0.1:1', timeoutMs: 1000 }))

/** A finished request as the onResponse hook sees it: only what routeOf and observeDecisions read. */
function finished (prefix: string | null, url: string, over: Partial<DecisionState> = {}): FastifyRequest & DecisionState {
  const target = prefix === null ? null : { route: { prefix, upstream: '', timeoutMs: 0 }, path: '/', query: '' }
  return { target, routeOptions: { url }, raw: { url }, errorCode: null, consumer: { id: 'c' }, rateLimit: { status: 'allowed' }, ...over } as unknown as FastifyRequest & DecisionState
}

/** What the hooks, the proxy and the gate record for one request. */
function answer (m: GatewayMetrics, req: FastifyRequest & DecisionState, method: string, status: number, seconds: number, failure: string | null = null): void {
  m.observeRequest(m.routeOf(req), method, status, seconds, failure, req.errorCode)
  m.observeDecisions(req)
}

// Durations on and around bucket bounds, and sums whose float rounding depends on the order of addition.
function drive (m: GatewayMetrics, shift: number): void {
  const users = finished('/api/v1/users', '/*')
  for (let i = 0; i < 7; i++) {
    m.observeRedis(0.0001 * (i + shift) + 0.00003, true)
    m.observeUpstream('/api/v1/users', 0.0009 + 0.0007 * i)
    answer(m, users, i % 3 === 0 ? 'POST' : 'GET', 200, 0.001 + 0.0011 * i + 0.1 * shift)
  }
  answer(m, finished('/api/v1/orders', '/*'), 'PROPFIND', 201, 0.025)
  m.observeUpstream('/api/v1/orders', 0.1 + 0.2)
  answer(m, finished('/api/v1/orders', '/*', { errorCode: 'UPSTREAM_ERROR' }), 'DELETE', 502, 30.5, 'refused')
  answer(m, finished('/', '/*', { rateLimit: { status: 'limited' }, errorCode: 'RATE_LIMITED' }), 'GET', 429, 0.0025)
  answer(m, finished('/', '/*', { errorCode: 'TOKEN_MISSING', consumer: null, rateLimit: null }), 'HEAD', 401, 0.0004)
  answer(m, finished('/', '/*', { errorCode: 'STORE_UNAVAILABLE', consumer: null, rateLimit: null }), 'GET', 503, 0.2)
  m.observeRedis(0.3, false)
  answer(m, finished(null, '/healthz'), 'GET', 200, 0.0002 * shift)
  answer(m, finished(null, '/docs/json'), 'GET', 304, 0.05)
  answer(m, finished(null, undefined as unknown as string, { errorCode: 'ROUTE_NOT_FOUND' }), 'GET', 404, 0.00001)
  m.observeRequest('unmatched', 'get', 400, 0, null, 'BAD_REQUEST') // a client error before routing
  m.observeUpstream('/not-configured', 1)
  m.observeUpgrade('/api/v1/users', 101, 0.004, null, null)
  m.authDecision('TOKEN_EXPIRED')
  m.rateLimitDecision('store_unavailable')
  if (shift > 0) answer(m, finished('/api/v1/orders', '/*'), 'PATCH', 100 + shift, 7.5)
}

/** The relevant metrics' blocks of an exposition, in order. */
function relevant (text: string): string {
  return text.split('\n\n').filter((block) => RELEVANT.has(/^# HELP (\S+)/.exec(block)?.[1] ?? '')).join('\n\n') + '\n'
}

t.test('one process, and three workers summed, expose exactly the golden text', async (t) => {
  const workers = [0, 1, 2].map((shift) => {
    const m = new GatewayMetrics(routes)
    drive(m, shift)
    return m
  })
  const single = relevant(await (workers[0] as GatewayMetrics).registry.metrics())
  const json = await Promise.all(workers.map(async (m) => await m.registry.getMetricsAsJSON()))
  const summed = relevant(await AggregatorRegistry.aggregate(json).metrics())
  const text = `# one process\n${single}\n# three workers, summed\n${summed}`
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, text)
  const golden = readFileSync(GOLDEN, 'utf8')
  t.equal(text, golden)
  t.ok(golden.split('\n').length > 300, 'the golden file covers every relevant series')
})
