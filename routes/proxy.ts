/**
 * The proxy surface: every method on every configured route prefix, in its own encapsulated scope
 * so its pass-through body parser and hooks affect nothing else. Hooks run in a fixed order:
 * path (400) → route (404) → token (401/403) → limit (429) → in flight (429) → circuit (503) → upstream (502/504).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import replyFrom from '@fastify/reply-from'
import { METHODS, type IncomingMessage } from 'node:http'
import { resolveTarget, type ProxyTarget } from '../plugins/target.js'
import { circuitOpen, concurrencyLimited } from '../src/lib/errors.js'
import { CircuitBreaker, type CircuitPermit } from '../src/lib/circuit.js'
import { upstreamRequestHeaders, downstreamResponseHeaders, peerTrust, appendVia, requestAuthority } from '../src/lib/forward-headers.js'
import { relayResponse, type UpstreamResponse } from './proxy-response.js'
import { sendContinue } from '../plugins/server-events.js'
import { attachWebSocketUpgrades } from './websocket.js'
import { InFlightLimiter } from '../src/lib/in-flight.js'
import { UpstreamAgent } from '../src/upstream-agent.js'
import { UpstreamExchange, type ExchangeRoute } from './upstream-exchange.js'
import { LazyChildLogger, type RequestLogger } from '../src/lib/lazy-logger.js'

const noRetry = (): null => null

/** Response headers the gateway owns: an upstream's values never replace them. */
export const GATEWAY_RESPONSE_HEADERS = new Set(['x-request-id', 'ratelimit', 'ratelimit-policy'])

/** One breaker per route prefix, made at startup; their state changes go to the metrics and the log. */
function circuitBreakers (app: FastifyInstance): Map<string, CircuitBreaker> {
  const defaults = app.config.circuit
  return new Map(app.config.routes.map((route) => [route.prefix, new CircuitBreaker({
    threshold: route.circuitFailureThreshold ?? defaults.failureThreshold,
    cooldownMs: route.circuitCooldownMs ?? defaults.cooldownMs,
    onTransition: (to, from) => {
      app.metrics.circuitTransition(route.prefix, to)
      // One line per state change (docs/observability.md): opening is what an operator must see.
      const fields = { route: route.prefix, upstream: new URL(route.upstream).origin, from, to }
      if (to === 'open') app.log.warn({ ...fields, cooldownMs: route.circuitCooldownMs ?? defaults.cooldownMs }, 'circuit opened: requests to this route get 503 CIRCUIT_OPEN')
      else app.log.info(fields, to === 'closed' ? 'circuit closed' : 'circuit half-open: one probe request goes through')
    }
  })]))
}

/** The breaker's permit for one upstream request, or a 503 CIRCUIT_OPEN before anything is sent. */
export function admit (breaker: CircuitBreaker): CircuitPermit {
  const permit = breaker.acquire()
  if (permit === null) throw circuitOpen(breaker.retryAfterSeconds())
  return permit
}

/** Puts back the client's Content-Type, hidden from Fastify's parser selection, as Node parsed it (its first value). */
function restoreContentType (req: IncomingMessage): void {
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === 12 && name.toLowerCase() === 'content-type') {
      req.headers['content-type'] = raw[i + 1]
      return
    }
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The proxied request's exchange with its upstream (routes/upstream-exchange.ts); null before the handler. Read in this scope only. */
    exchange: UpstreamExchange | null
  }
}

/** What the handler needs of a route, made once at start: no object is built per request for reply.from. */
interface ProxyRoute extends ExchangeRoute {
  readonly upstream: string
  readonly breaker: CircuitBreaker
  readonly fromOptions: Parameters<FastifyReply['from']>[1]
}

const exchangeOf = (request: FastifyRequest): UpstreamExchange => request.exchange as UpstreamExchange

/** Registers the catch-all proxy route; its one onRequest hook resolves the target, then checks token and limit. */
export default async function proxyRoutes (app: FastifyInstance): Promise<void> {
  const table = app.routeTable
  const breakers = circuitBreakers(app)
  // One undici Agent for every upstream, TLS verified (reply-from's default would not verify),
  // UPSTREAM_MAX_CONNECTIONS per origin; a token holds at most MAX_IN_FLIGHT_PER_TOKEN of them.
  const agent = new UpstreamAgent(app.config.upstreamMaxConnections)
  app.addHook('onClose', async () => { await agent.close() })
  const inFlight = new InFlightLimiter(app.config.maxInFlightPerToken)
  app.metrics.countInFlight(() => inFlight.total)
  app.decorateRequest('exchange', null)

  // Bodies are handed to reply-from as the raw stream: nothing is parsed or buffered here.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
  // Fastify answers 415 for a Content-Type it cannot parse (`text`, `;;;`) before it even looks
  // for the catch-all parser: the proxy shows it a neutral one (absent, QUERY would be refused)
  // and puts the client's back for the upstream.
  app.addHook('preParsing', (request, _reply, payload, done) => {
    if (request.raw.headers['content-type'] !== undefined) request.raw.headers['content-type'] = 'application/octet-stream'
    done(null, payload)
  })
  await app.register(replyFrom, { undici: agent as never, disableRequestLogging: true })

  // One onRequest hook, callback style, for the whole admission in the documented order:
  // target (400/404) → token (401/403) → limit (429). One hook instead of four saves a hook
  // dispatch and three promises per request (docs/performance.md).
  app.addHook('onRequest', function admitRequest (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    try {
      request.target = resolveTarget(table, request.raw.url ?? '')
    } catch (err) {
      done(err as Error)
      return
    }
    app.authorize(request).then(() => {
      try {
        const state = request.rateLimit
        if (state !== null) reply.headers(app.rateLimitVerdict(state))
      } catch (err) {
        done(err as Error)
        return
      }
      done() // outside the try: what runs next (the handler) must not be answered twice
    }, done)
  })

  const trusts = peerTrust(app.config.trustProxy)
  // The four callbacks reply-from calls, the same for every request: each finds its exchange on the request.
  const rewriteRequestHeaders = (req: FastifyRequest, headers: Record<string, string | string[] | undefined>): Record<string, string | string[] | undefined> => {
    const out = upstreamRequestHeaders(headers, req.headers, {
      remoteAddress: req.raw.socket.remoteAddress ?? '',
      protocol: req.protocol,
      host: requestAuthority(req.headers),
      trustProxy: trusts(req.raw.socket.remoteAddress ?? ''),
      requestId: req.id,
      consumerId: req.consumer?.id ?? null
    })
    out.via = appendVia(req.headers.via, req.raw.httpVersion) // the version the client spoke
    return out
  }
  const rewriteHeaders = (headers: Record<string, string | string[] | undefined>, req: FastifyRequest): Record<string, string | string[] | undefined> => {
    const exchange = exchangeOf(req)
    exchange.answered()
    app.metrics.observeUpstream((req.target as ProxyTarget).route.prefix, (performance.now() - exchange.started) / 1000)
    const out = downstreamResponseHeaders(headers, GATEWAY_RESPONSE_HEADERS)
    // undici does not say which version the upstream answered in; it asks in HTTP/1.1.
    out.via = appendVia(headers.via, '1.1')
    exchange.upstreamHeaders = Object.keys(out)
    return out
  }
  const onResponse = (request: FastifyRequest, reply: FastifyReply, res: unknown): void => {
    const upstream = res as UpstreamResponse
    // reply-from goes on to here after a status it refused (onError already answered).
    if (request.upstreamFailure !== null) { upstream.stream.destroy(); return }
    const exchange = exchangeOf(request)
    exchange.relaying(relayResponse(reply, upstream, GATEWAY_RESPONSE_HEADERS, exchange))
  }
  const onError = (reply: FastifyReply, { error }: { error: Error }): void => {
    const exchange = exchangeOf(reply.request)
    if (exchange.settled) return // a guard answered, or the client left: this error is that abort
    reply.send(exchange.failed(error))
  }
  const routes = new Map<string, ProxyRoute>(app.config.routes.map((route) => {
    const origin = new URL(route.upstream).origin
    return [route.prefix, {
      upstream: route.upstream,
      breaker: breakers.get(route.prefix) as CircuitBreaker,
      timeoutMs: route.timeoutMs,
      bodyIdleMs: app.config.clientBodyTimeoutMs,
      poolSaturated: () => agent.saturated(origin),
      fromOptions: { timeout: route.timeoutMs, retryDelay: noRetry, rewriteRequestHeaders, rewriteHeaders, onResponse, onError } as Parameters<FastifyReply['from']>[1]
    }]
  }))

  // Upgrades never reach the route below: Node hands them to the server's 'upgrade' listener.
  attachWebSocketUpgrades(app, { table, breakers, trusts })
  // Fastify routes only its default methods: add the others Node parses (WebDAV's PROPFIND, MKCOL…),
  // bodies allowed, so that they are proxied too instead of answering 404. CONNECT never gets here
  // (plugins/server-events.ts answers it 405).
  for (const method of METHODS) {
    if (method !== 'CONNECT' && !app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: true })
  }
  app.route({
    method: app.supportedMethods,
    url: '/*',
    // reply-from logs every upstream failure at `warn`, with a stack: one line per request above
    // `info`. The request line (plugins/request-log.ts) already says which failure it was.
    logLevel: 'error',
    // A request's child logger is made only if something is logged at `error` or above: a pino
    // child with its own level costs ~1 µs per request, and nearly no request logs through it.
    childLoggerFactory: (logger, bindings, options) =>
      new LazyChildLogger(logger as unknown as RequestLogger, bindings, options as { level: 'error' }) as unknown as typeof logger,
    schema: { hide: true }, // documented per prefix by src/lib/openapi-proxy.ts
    config: { deferContinue: true }, // `100 Continue` only once the breaker admitted the request too
    handler (request: FastifyRequest, reply: FastifyReply): void {
      const target = request.target as ProxyTarget
      const route = routes.get(target.route.prefix) as ProxyRoute
      // In flight (429), then the circuit (503), before any body byte is read. The in-flight refusal
      // comes after the gate call, so it has spent one unit of quota, like a 403 (docs/rate-limiting.md).
      const consumerId = request.consumer?.id ?? null
      if (consumerId !== null && !inFlight.tryAcquire(consumerId)) throw concurrencyLimited(inFlight.limit)
      let permit: CircuitPermit
      try {
        permit = admit(route.breaker)
      } catch (err) {
        if (consumerId !== null) inFlight.release(consumerId)
        throw err
      }
      restoreContentType(request.raw)
      sendContinue(reply)
      // From here the exchange gives the in-flight place back when the response is over, however it ends.
      const exchange = new UpstreamExchange(request, reply, route, permit, consumerId === null ? null : inFlight, consumerId ?? '')
      request.exchange = exchange
      // reply-from dispatches inside reply.from(), synchronously; every dispatch is preceded by this call.
      agent.next(exchange)
      // Not returned: Fastify would await the reply (a thenable) and take the 'error' that
      // proxy-response.ts reports on an aborted response for an error of this handler.
      reply.from(route.upstream + target.path, route.fromOptions)
    }
  })
}
