/**
 * Prometheus metrics, one prom-client Registry per app (tests build several apps in one process,
 * so nothing per-app goes to the global registry). Every label takes a value from a small fixed
 * set: route prefixes from ROUTES or the gateway's own paths, never a raw path, query or token.
 *
 * Recorded here, from hooks: http_requests_total, http_request_duration_seconds,
 * upstream_errors_total (from `request.upstreamFailure`), gateway_errors_total (the code of
 * answers the gateway made itself), and the auth and rate-limit decisions, derived once per
 * request from its state (`target`, `errorCode`, `rateLimit`) by `observeDecisions`; routes/websocket.ts
 * calls it for an upgrade too. Recorded by the code that knows, through `app.metrics`:
 *   - routes/proxy.ts:       `app.metrics.observeUpstream(route.prefix, seconds)` when the
 *                            upstream's response head arrives, `app.metrics.circuitTransition(
 *                            route.prefix, to)` when a route's circuit breaker changes state;
 *   - the gate plugin:       `app.metrics.observeRedis(seconds, ok)` around its script call.
 *   - routes/websocket*.ts:  `observeUpgrade` for each upgrade's answer (Fastify's hooks never see
 *                            it), `websocketOpened` / `websocketClosed(route, reason)` per tunnel.
 * Unknown values become 'other' instead of a new series.
 *
 * The per-request series (requests, duration, time to upstream, decisions, Redis duration) are
 * src/lib/metric-series.ts objects: recorded into by index, no label hash per request, exported at
 * scrape time exactly as prom-client's own Counter and Histogram (docs/performance.md). The rare
 * ones (errors, circuit, WebSocket) stay plain prom-client metrics.
 */
import fp from 'fastify-plugin'
import cluster from 'node:cluster'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { attachWorkerMetrics } from '../src/cluster-metrics.js'
import { RouteTable, type RouteConfig } from '../src/lib/route-table.js'
import { TARGET_PLUGIN, routeOfUrl, type ProxyTarget } from './target.js'
import { ownPathOf } from '../src/lib/gateway-paths.js'
import type { CircuitState } from '../src/lib/circuit.js'
import { SeriesCounter, SeriesHistogram, type CounterSeries, type HistogramSeries } from '../src/lib/metric-series.js'
import { RouteSeries, type RequestMetrics } from '../src/lib/route-series.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's metrics and the recording helpers other plugins call. */
    metrics: GatewayMetrics
  }
}

/** Outcomes of the token check (docs/reference.md 401/403/503). */
export type AuthResult = 'allowed' | 'missing' | 'invalid' | 'expired' | 'forbidden' | 'store_unavailable'
/** What `observeDecisions` reads of a finished request or upgrade. */
export interface DecisionState {
  target: ProxyTarget | null
  errorCode: string | null
  consumer: { id: string } | null
  rateLimit: { status: string } | null
}
/** Outcomes of the rate limiter. */
export type RateLimitResult = 'allowed' | 'limited' | 'store_unavailable'

const AUTH_RESULTS: readonly AuthResult[] = ['allowed', 'missing', 'invalid', 'expired', 'forbidden', 'store_unavailable']
const AUTH_CODES = new Map<string, AuthResult>([
  ['TOKEN_MISSING', 'missing'],
  ['TOKEN_INVALID', 'invalid'],
  ['TOKEN_EXPIRED', 'expired'],
  ['ROUTE_FORBIDDEN', 'forbidden'],
  ['STORE_UNAVAILABLE', 'store_unavailable']
])
const RATE_LIMIT_RESULTS: readonly RateLimitResult[] = ['allowed', 'limited', 'store_unavailable']
const UPSTREAM_FAILURES = ['timeout', 'refused', 'reset', 'dns', 'tls', 'protocol', 'pool']
/** Why a WebSocket tunnel ended (routes/websocket.ts). */
export const WEBSOCKET_CLOSE_REASONS = ['client_closed', 'upstream_closed', 'idle', 'revoked', 'expired', 'forbidden', 'shutdown', 'error'] as const
/** One of WEBSOCKET_CLOSE_REASONS. */
export type WebSocketCloseReason = typeof WEBSOCKET_CLOSE_REASONS[number]
/** Gauge values of `portcullis_circuit_state`. */
const CIRCUIT_STATES: Record<CircuitState, number> = { closed: 0, open: 1, 'half-open': 2 }
/** Gateway codes (src/lib/errors.ts; Fastify's own 4xx are mapped to them) are the only `code` values. */
const MAX_ERROR_CODES = 40

// Request latency spans cached answers (sub-ms) to slow uploads; Redis is expected well under 10 ms.
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const REDIS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]

/** The metrics of one app; label values are checked against fixed sets before they are used. */
export class GatewayMetrics {
  readonly registry = new Registry()
  private readonly upstreamErrors: Counter<'route' | 'kind'>
  private readonly gatewayErrors: Counter<'route' | 'code'>
  private readonly redisDuration: HistogramSeries
  private readonly redisErrors: Counter
  private readonly circuitState: Gauge<'route'>
  private readonly circuitTransitions: Counter<'route' | 'to'>
  private readonly wsConnections: Gauge<'route'>
  private readonly wsClosed: Counter<'route' | 'reason'>
  private inFlightReader: () => number = () => 0
  private readonly routePrefixes: ReadonlySet<string>
  private readonly table: RouteTable
  private readonly errorCodes = new Set<string>()
  private readonly requestMetrics: RequestMetrics
  /** Per route label (configured prefixes, the gateway's own paths, `unmatched`), made on first use. */
  private readonly byRoute = new Map<string, RouteSeries>()
  /** The auth series by result and by the gateway code a refusal maps to; `other` for the rest. */
  private readonly auth = new Map<string, CounterSeries>()
  private readonly authOther: CounterSeries
  private readonly rateLimit = new Map<string, CounterSeries>()
  private readonly rateLimitOther: CounterSeries

  /** `table` is the app's route table (plugins/target.ts); without one, a table of `routes`. */
  constructor (routes: readonly RouteConfig[], table?: RouteTable) {
    this.routePrefixes = new Set(routes.map((r) => r.prefix))
    this.table = table ?? new RouteTable(routes)
    const registers = [this.registry]
    const registry = this.registry
    this.requestMetrics = {
      requests: new SeriesCounter('portcullis_http_requests_total', 'Requests answered, by route prefix, method and status class', registry),
      duration: new SeriesHistogram('portcullis_http_request_duration_seconds', 'Time from request received to response sent', HTTP_BUCKETS, registry),
      upstream: new SeriesHistogram('portcullis_upstream_duration_seconds', 'Time from the proxy handler start to the upstream response head', HTTP_BUCKETS, registry)
    }
    this.upstreamErrors = new Counter({ name: 'portcullis_upstream_errors_total', help: 'Upstream failures by kind (timeout, refused, reset, dns, tls, protocol; pool: no pooled connection free in time)', labelNames: ['route', 'kind'], registers })
    this.gatewayErrors = new Counter({ name: 'portcullis_gateway_errors_total', help: 'Error answers the gateway made itself, by gateway code (upstream answers are not counted here)', labelNames: ['route', 'code'], registers })
    const auth = new SeriesCounter('portcullis_auth_decisions_total', 'Token checks by result', registry)
    const rateLimit = new SeriesCounter('portcullis_ratelimit_decisions_total', 'Rate-limit decisions by result', registry)
    this.redisDuration = new SeriesHistogram('portcullis_redis_command_duration_seconds', 'Duration of the hot-path Redis command (token check + rate limit script)', REDIS_BUCKETS, registry).series({})
    this.redisErrors = new Counter({ name: 'portcullis_redis_errors_total', help: 'Hot-path Redis commands that failed or timed out', registers })
    // Each worker has its own breakers; summed over workers a state would be meaningless, so the
    // highest wins (non-zero = some worker's breaker is not closed).
    this.circuitState = new Gauge({ name: 'portcullis_circuit_state', help: 'Circuit breaker state per route: 0 closed, 1 open, 2 half-open (with WORKERS>1 the highest over workers)', labelNames: ['route'], aggregator: 'max', registers })
    this.circuitTransitions = new Counter({ name: 'portcullis_circuit_transitions_total', help: 'Circuit breaker state changes per route, by the state entered', labelNames: ['route', 'to'], registers })
    this.wsConnections = new Gauge({ name: 'portcullis_websocket_connections', help: 'Open WebSocket tunnels per route', labelNames: ['route'], registers })
    this.wsClosed = new Counter({ name: 'portcullis_websocket_closed_total', help: 'WebSocket tunnels closed, by route and reason', labelNames: ['route', 'reason'], registers })
    // Series that exist from the start, so rate() and absent() work before the first event.
    for (const r of AUTH_RESULTS) this.auth.set(r, auth.series({ result: r }))
    this.authOther = auth.series({ result: 'other' })
    for (const [code, r] of AUTH_CODES) this.auth.set(code, this.auth.get(r) as CounterSeries)
    for (const r of RATE_LIMIT_RESULTS) this.rateLimit.set(r, rateLimit.series({ result: r }))
    this.rateLimitOther = rateLimit.series({ result: 'other' })
    for (const route of this.routePrefixes) {
      for (const kind of UPSTREAM_FAILURES) this.upstreamErrors.inc({ route, kind }, 0)
      this.circuitState.set({ route }, CIRCUIT_STATES.closed)
      for (const to of Object.keys(CIRCUIT_STATES)) this.circuitTransitions.inc({ route, to }, 0)
      this.wsConnections.set({ route }, 0)
      for (const reason of WEBSOCKET_CLOSE_REASONS) this.wsClosed.inc({ route, reason }, 0)
    }
    this.redisErrors.inc(0)
    const metrics = this // read at scrape time: nothing per request on the hot path
    new Gauge({ name: 'portcullis_proxy_in_flight_requests', help: 'Proxied requests admitted and not yet answered (every token; bounded per token by MAX_IN_FLIGHT_PER_TOKEN)', registers, collect () { this.set(metrics.inFlightReader()) } }) // eslint-disable-line no-new
    // Summed over workers by src/cluster-metrics.ts: says how many processes a scrape covers.
    new Gauge({ name: 'portcullis_workers', help: 'Gateway worker processes whose metrics this scrape sums', registers }).set(1)
    collectDefaultMetrics({ register: this.registry, prefix: 'portcullis_' })
  }

  /** Records one token check: an AuthResult or the gateway error code the request is refused with. */
  authDecision (result: AuthResult | string): void {
    (this.auth.get(result) ?? this.authOther).value++
  }

  /** Records one rate-limit decision. */
  rateLimitDecision (result: RateLimitResult): void {
    (this.rateLimit.get(result) ?? this.rateLimitOther).value++
  }

  /**
   * Records the auth and rate-limit decisions of one finished request (or upgrade), once, from
   * its state: a request with a target went through the token check, whose refusal code or
   * decision is on the request. Nothing for a request refused before (400, 404, shed).
   */
  observeDecisions (state: DecisionState): void {
    if (state.target === null) return
    const code = state.errorCode
    if (code !== null && AUTH_CODES.has(code)) {
      this.authDecision(code)
      // The gate's 503 is the rate limiter's too: its one script call makes both decisions.
      if (code === 'STORE_UNAVAILABLE' && state.consumer === null) this.rateLimitDecision('store_unavailable')
      return
    }
    const decision = state.rateLimit
    if (decision === null) return // the client left before the gate answered
    this.authDecision('allowed')
    this.rateLimitDecision(decision.status === 'limited' ? 'limited' : 'allowed')
  }

  /** Records one hot-path Redis command: its duration, and an error when `ok` is false. */
  observeRedis (seconds: number, ok: boolean): void {
    this.redisDuration.observe(seconds)
    if (!ok) this.redisErrors.inc()
  }

  /** Records the time to the upstream's response head for a configured route prefix. */
  observeUpstream (routePrefix: string, seconds: number): void {
    this.seriesOf(this.routeLabel(routePrefix)).observeUpstream(seconds)
  }

  /** Records a route's circuit breaker entering state `to`. */
  circuitTransition (routePrefix: string, to: CircuitState): void {
    const route = this.routeLabel(routePrefix)
    this.circuitState.set({ route }, CIRCUIT_STATES[to])
    this.circuitTransitions.inc({ route, to })
  }

  /** Records a WebSocket tunnel opened on a route. */
  websocketOpened (routePrefix: string): void {
    this.wsConnections.inc({ route: this.routeLabel(routePrefix) })
  }

  /** Records a WebSocket tunnel closed, and why. */
  websocketClosed (routePrefix: string, reason: WebSocketCloseReason): void {
    const route = this.routeLabel(routePrefix)
    this.wsConnections.dec({ route })
    this.wsClosed.inc({ route, reason: (WEBSOCKET_CLOSE_REASONS as readonly string[]).includes(reason) ? reason : 'error' })
  }

  /** Records the answer to an upgrade request (a 101 or a refusal), which Fastify's hooks never see. */
  observeUpgrade (routePrefix: string | null, statusCode: number, seconds: number, failure: string | null, errorCode: string | null): void {
    this.observeRequest(this.routeLabel(routePrefix ?? ''), 'GET', statusCode, seconds, failure, errorCode)
  }

  /** Where `portcullis_proxy_in_flight_requests` reads its value at scrape time (routes/proxy.ts). */
  countInFlight (read: () => number): void {
    this.inFlightReader = read
  }

  /** Records a finished request; `route` must come from `routeOf`. */
  observeRequest (route: string, rawMethod: string, statusCode: number, seconds: number, failure: string | null, errorCode: string | null): void {
    this.seriesOf(route).observe(rawMethod, statusCode, seconds)
    if (failure !== null) this.upstreamErrors.inc({ route, kind: UPSTREAM_FAILURES.includes(failure) ? failure : 'other' })
    if (errorCode !== null) this.gatewayErrors.inc({ route, code: this.codeLabel(errorCode) })
  }

  /** The route label of a request: its configured prefix, one of the gateway's own paths, or `unmatched`. */
  routeOf (request: FastifyRequest): string {
    const prefix = request.target?.route.prefix
    if (prefix !== undefined) return this.routeLabel(prefix)
    const url = request.routeOptions.url
    if (url === undefined) return 'unmatched'
    // Refused before the proxy resolved its target (shed under pressure): route it here, on this
    // rare path only, so shedding shows per route; an unsafe or unrouted path stays `unmatched`.
    if (url === '/*') return this.routeLabel(routeOfUrl(this.table, request.raw.url ?? '')?.prefix ?? '')
    // The gateway's own paths are route labels (`/docs/json` counts as `/docs`); anything else is `unmatched`.
    return ownPathOf(url) ?? 'unmatched'
  }

  // Codes come from src/lib/errors.ts only: a small set, but capped all the same.
  private codeLabel (code: string): string {
    if (this.errorCodes.has(code)) return code
    if (this.errorCodes.size >= MAX_ERROR_CODES) return 'OTHER'
    this.errorCodes.add(code)
    return code
  }

  // Route labels are a bounded set (routeOf, routeLabel), so this map is too.
  private seriesOf (route: string): RouteSeries {
    let series = this.byRoute.get(route)
    if (series === undefined) this.byRoute.set(route, series = new RouteSeries(route, this.requestMetrics))
    return series
  }

  private routeLabel (prefix: string): string {
    return this.routePrefixes.has(prefix) ? prefix : 'unmatched'
  }
}

/** Registers the per-app registry, the recording hooks and, in a cluster worker, the IPC answerer. */
export default fp(async function metricsPlugin (app) {
  const metrics = new GatewayMetrics(app.config.routes, app.routeTable)
  app.decorate('metrics', metrics)
  // `errorCode` is set by plugins/errors.ts for answers the gateway made itself; an upstream's own
  // 4xx/5xx leaves it null. Callback-style hook: no promise per request on the hot path.
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    metrics.observeRequest(metrics.routeOf(request), request.method, reply.statusCode, reply.elapsedTime / 1000,
      request.upstreamFailure ?? null, request.errorCode)
    metrics.observeDecisions(request)
    done()
  })

  if (cluster.isWorker) {
    const detach = attachWorkerMetrics(metrics.registry)
    app.addHook('onClose', async () => { detach() })
  }
}, { name: 'portcullis-metrics', fastify: '5.x', dependencies: ['portcullis-config', 'portcullis-errors', TARGET_PLUGIN] })
