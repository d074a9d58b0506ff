/**
 * The proxy surface: every method on every configured route prefix, in its own encapsulated scope
 * so its pass-through body parser and hooks affect nothing else. Hooks run in a fixed order:
 * path (400) → route (404) → token (401/403) → limit (429) → in flight (429) → circuit (503) → upstream (502/504).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import replyFrom from '@fastify/reply-from'
import type { Dispatcher } from 'undici'
import { METHODS, type IncomingMessage } from 'node:http'
import { resolveTarget, type ProxyTarget, type UpstreamFailureKind } from '../plugins/target.js'
import { circuitOpen, concurrencyLimited, upstreamError, upstreamTimeout } from '../src/lib/errors.js'
import { CircuitBreaker, type CircuitPermit } from '../src/lib/circuit.js'
import { upstreamRequestHeaders, downstreamResponseHeaders, peerTrust, appendVia, requestAuthority } from '../src/lib/forward-headers.js'
import { relayResponse, rememberTrailers, type UpstreamResponse } from './proxy-response.js'
import type { GatewayError } from '../src/lib/errors.js'
import { sendContinue } from '../plugins/server-events.js'
import { attachWebSocketUpgrades } from './websocket.js'
import { InFlightLimiter } from '../src/lib/in-flight.js'
import { UpstreamAgent } from '../src/upstream-agent.js'
import { UpstreamExchange } from './upstream-exchange.js'

/** Classifies an error reported by reply-from/undici. */
export function classifyUpstreamError (err: Error & { code?: string, cause?: unknown }): Exclude<UpstreamFailureKind, 'pool'> {
  const code = (err.cause as { code?: string } | undefined)?.code ?? err.code ?? ''
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT' ||
    code === 'FST_REPLY_FROM_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'timeout'
  if (code === 'ECONNREFUSED') return 'refused'
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return 'reset'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'dns'
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code.includes('SELF_SIGNED')) return 'tls'
  return 'protocol'
}

/** What a 502 UPSTREAM_ERROR says for each kind of failure. */
export const FAILURE_TEXT: Record<Exclude<UpstreamFailureKind, 'timeout' | 'pool'>, string> = {
  refused: 'refused the connection',
  reset: 'reset the connection',
  dns: 'host could not be resolved',
  tls: 'TLS certificate could not be verified',
  protocol: 'answered with something that is not valid HTTP'
}

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

/** The client left before the upstream answered: what undici reports then is no news about the upstream. */
function clientGone (request: FastifyRequest, reply: FastifyReply): boolean {
  return request.raw.aborted || reply.raw.destroyed
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

/** Registers the catch-all proxy route; its one onRequest hook resolves the target, then checks token, limit and in-flight count. */
export default async function proxyRoutes (app: FastifyInstance): Promise<void> {
  const table = app.routeTable
  const breakers = circuitBreakers(app)
  // One undici Agent for every upstream, TLS verified (reply-from's default would not verify),
  // UPSTREAM_MAX_CONNECTIONS per origin; a token holds at most MAX_IN_FLIGHT_PER_TOKEN of them.
  const agent = new UpstreamAgent(app.config.upstreamMaxConnections)
  app.addHook('onClose', async () => { await agent.close() })
  // reply-from hands on only the body of undici's answer; its trailers object (filled in when the
  // body ends) is kept beside the body for routes/proxy-response.ts to forward.
  const upstreamClient = {
    request (opts: Dispatcher.RequestOptions, callback: (err: Error | null, data?: Dispatcher.ResponseData) => void): void {
      agent.request(opts, (err, data) => {
        if (err === null && data !== undefined) rememberTrailers(data.body, data.trailers)
        callback(err, data)
      })
    }
  }
  const origins = new Map(app.config.routes.map((r) => [r.prefix, new URL(r.upstream).origin]))
  const inFlight = new InFlightLimiter(app.config.maxInFlightPerToken)
  app.metrics.countInFlight(() => inFlight.total)

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
  await app.register(replyFrom, { undici: upstreamClient as never, disableRequestLogging: true })

  // One onRequest hook, callback style, for the whole admission in the documented order:
  // target (400/404) → token (401/403) → limit (429) → in flight (429). One hook instead of four
  // saves a hook dispatch and three promises per request (docs/performance.md).
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
        limitInFlight(request, reply)
      } catch (err) {
        done(err as Error)
        return
      }
      done() // outside the try: what runs next (the handler) must not be answered twice
    }, done)
  })
  // After the gate call, so a refusal here has spent one unit of quota, like a 403 (docs/rate-limiting.md);
  // before any body byte is read. Released exactly once when the response is over, however it ends.
  function limitInFlight (request: FastifyRequest, reply: FastifyReply): void {
    const consumer = request.consumer
    if (consumer === null) return
    const release = inFlight.acquire(consumer.id)
    if (release === null) throw concurrencyLimited(inFlight.limit)
    reply.raw.once('close', release)
    // A pipelined request whose response was not started yet gets no 'close' of its own when the
    // socket dies; its request does, and its socket is gone then.
    request.raw.once('close', () => { if (request.raw.socket?.destroyed !== false) release() })
  }

  const trusts = peerTrust(app.config.trustProxy)
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
    schema: { hide: true }, // documented per prefix by src/lib/openapi-proxy.ts
    config: { deferContinue: true }, // `100 Continue` only once the breaker admitted the request too
    handler (request: FastifyRequest, reply: FastifyReply): void {
      const target = request.target as ProxyTarget
      const { route } = target
      const permit = admit(breakers.get(route.prefix) as CircuitBreaker)
      restoreContentType(request.raw)
      sendContinue(reply)
      const started = performance.now() // upstream time: from here to the response head (metrics)
      let upstreamHeaders: string[] = []
      // Any upstream failure, before or after the head: counted by kind and by the breaker (unless
      // the client had left, which says nothing about the upstream); the answer if none was sent.
      const failed = (error: Error): GatewayError => {
        const kind = classifyUpstreamError(error)
        request.upstreamFailure = kind
        if (clientGone(request, reply)) permit.release()
        else permit.failure()
        return kind === 'timeout' ? upstreamTimeout(route.timeoutMs) : upstreamError(FAILURE_TEXT[kind])
      }
      const exchange = new UpstreamExchange(request, reply, {
        timeoutMs: route.timeoutMs,
        bodyIdleMs: app.config.clientBodyTimeoutMs,
        permit,
        poolSaturated: () => agent.saturated(origins.get(route.prefix) ?? '')
      })
      // reply-from dispatches inside reply.from(), synchronously; every dispatch is preceded by this call.
      agent.next(exchange.hooks)
      // Not returned: Fastify would await the reply (a thenable) and take the 'error' that
      // proxy-response.ts reports on an aborted response for an error of this handler.
      reply.from(route.upstream + target.path, {
        timeout: route.timeoutMs,
        retryDelay: noRetry,
        rewriteRequestHeaders: (req, headers) => {
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
        },
        rewriteHeaders: (headers) => {
          permit.answered() // decides a half-open probe; the outcome is the body's (proxy-response.ts)
          app.metrics.observeUpstream(route.prefix, (performance.now() - started) / 1000)
          const out = downstreamResponseHeaders(headers, GATEWAY_RESPONSE_HEADERS)
          // undici does not say which version the upstream answered in; it asks in HTTP/1.1.
          out.via = appendVia(headers.via, '1.1')
          upstreamHeaders = Object.keys(out)
          return out
        },
        onResponse: (_req, _rep, res) => {
          // reply-from goes on to here after a status it refused (onError already answered).
          if (request.upstreamFailure !== null) { (res as unknown as UpstreamResponse).stream.destroy(); return }
          relayResponse(reply, res as unknown as UpstreamResponse, upstreamHeaders, GATEWAY_RESPONSE_HEADERS, {
            complete: () => { permit.success() },
            failed,
            clientGone: () => { permit.release() }
          })
        },
        onError: (rep, { error }) => {
          if (exchange.settled) return // a guard answered, or the client left: this error is that abort
          rep.send(failed(error))
        }
      })
    }
  })
}
