import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Log the route pattern (`/admin/tokens/:id`) instead of the path, whose parameters a client may fill with a key. */
    logRoutePattern?: boolean
  }
}

/**
 * Exactly one `info` line per request, written when the response is done: request id, method,
 * the normalised path (never the query string, which a careless client may fill with secrets),
 * route prefix, status and latency. Token id and rate-limit result are added when known. Routes
 * configured with `logRoutePattern` (the admin API) log their pattern instead of the path.
 * Written through the root logger, so a route's own `logLevel` (the proxy raises its to `error`
 * to silence reply-from's per-request warnings) cannot drop it.
 */
export default fp(async function requestLogPlugin (app) {
  app.addHook('onResponse', async (request, reply) => {
    const target = request.target
    app.log.info({
      reqId: request.id,
      method: request.method,
      path: target?.path ?? (request.routeOptions.config.logRoutePattern === true ? request.routeOptions.url : pathOnly(request.raw.url)),
      route: target?.route.prefix ?? null,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 100) / 100,
      consumer: request.consumer?.id,
      rateLimit: request.rateLimit?.status,
      upstreamFailure: request.upstreamFailure ?? undefined
    }, 'request')
  })
}, { name: 'portcullis-request-log', fastify: '5.x' })

/** The raw path without its query, capped: a refused request's target is untrusted input. */
export function pathOnly (url: string | undefined): string {
  const u = url ?? ''
  const q = u.indexOf('?')
  const p = q === -1 ? u : u.slice(0, q)
  return p.length > 256 ? p.slice(0, 256) + '…' : p
}
