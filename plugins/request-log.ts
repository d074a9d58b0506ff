import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import proxyAddr from '@fastify/proxy-addr'
import { ownPathOf } from '../src/lib/gateway-paths.js'
import { REQUEST_LINE_KEYS, requestLineProps, type RequestLine } from '../src/lib/request-line.js'
import { directInfoWriter } from '../src/log-stream.js'
import { TARGET_PLUGIN, routeOfUrl } from './target.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Log the route pattern (`/admin/tokens/:id`) instead of the path, whose parameters a client may fill with a key. */
    logRoutePattern?: boolean
  }
}

/**
 * The client address as Fastify's `request.ip` reads it under TRUST_PROXY, for the request lines of
 * requests Fastify never routes (a WebSocket upgrade): the socket peer, or the address
 * `X-Forwarded-For` names as far as the trusted proxies go. A hop count trusts no peer here, as in
 * Fastify, which cannot check the peer against a count.
 */
export function clientAddressOf (trustProxy: boolean | number | string[]): (req: IncomingMessage) => string {
  if (trustProxy === false || typeof trustProxy === 'number') return (req) => req.socket.remoteAddress ?? ''
  const trust = trustProxy === true ? () => true : proxyAddr.compile(trustProxy)
  return (req) => {
    const addrs = proxyAddr.all(req, trust)
    return addrs[addrs.length - 1] ?? ''
  }
}

/**
 * Exactly one `info` line per request, written when the response is done: request id, method,
 * the normalised path (never the query string, which a careless client may fill with secrets),
 * route (as labelled in the metrics), status, the gateway's error code, client address, latency. Token id and rate-limit result are added when known. Routes
 * configured with `logRoutePattern` (the admin API) log their pattern instead of the path.
 * Written through the root logger, so a route's own `logLevel` (the proxy raises its to `error`
 * to silence reply-from's per-request warnings) cannot drop it.
 */
export default fp(async function requestLogPlugin (app) {
  const table = app.routeTable // plugins/target.ts owns the one table
  // Shed under pressure before the proxy resolved its target: route it here, on this rare path
  // only, as plugins/metrics.ts does, so the line and the metrics agree.
  const unresolvedRoute = (routeUrl: string | undefined, rawUrl: string | undefined): string | null =>
    routeUrl === '/*' ? routeOfUrl(table, rawUrl ?? '')?.prefix ?? null : null
  const fieldsOf = (request: FastifyRequest, reply: FastifyReply): RequestLine => {
    const target = request.target
    return {
      reqId: request.id,
      method: request.method,
      path: target?.path ?? (request.routeOptions.config.logRoutePattern === true ? request.routeOptions.url : pathOnly(request.raw.url)),
      // The same label as the metrics: the prefix, or the gateway's own path (`/admin`, `/docs`).
      route: target?.route.prefix ?? ownPathOf(request.routeOptions.url) ?? unresolvedRoute(request.routeOptions.url, request.raw.url),
      status: reply.statusCode,
      // Which of the gateway's own answers (a 503 may be STORE_UNAVAILABLE, CIRCUIT_OPEN, UNDER_PRESSURE).
      code: request.errorCode ?? undefined,
      // The client: the socket's peer, or X-Forwarded-For's as far as TRUST_PROXY trusts it.
      remoteAddress: request.ip as string | undefined, // undefined once a client that left is gone
      listener: app.management.isManagementRequest(request.raw) ? 'management' : undefined,
      ms: Math.round(reply.elapsedTime * 100) / 100,
      consumer: request.consumer?.id,
      rateLimit: request.rateLimit?.status,
      upstreamFailure: request.upstreamFailure ?? undefined
    }
  }
  // The line is serialised by src/lib/request-line.ts and written to the logger's own destination,
  // the same bytes as `app.log.info(fields, 'request')` at a fraction of pino's cost; through pino
  // when the logger has an option only pino honours (docs/observability.md).
  const direct = directInfoWriter(app.log, 'request', REQUEST_LINE_KEYS, requestLineProps)
  // Callback style: no promise per request on the hot path (docs/performance.md).
  app.addHook('onResponse', direct === null
    ? (request, reply, done) => { app.log.info(fieldsOf(request, reply), 'request'); done() }
    : (request, reply, done) => { direct(fieldsOf(request, reply)); done() })
}, { name: 'portcullis-request-log', fastify: '5.x', dependencies: ['portcullis-config', 'portcullis-errors', 'portcullis-management', TARGET_PLUGIN] })

/** The raw path without its query, capped: a refused request's target is untrusted input. */
export function pathOnly (url: string | undefined): string {
  const u = url ?? ''
  const q = u.indexOf('?')
  const p = q === -1 ? u : u.slice(0, q)
  return p.length > 256 ? p.slice(0, 256) + '…' : p
}
