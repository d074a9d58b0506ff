import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest, Http2Session, Http2Stream } from 'node:http2'

declare module 'fastify' {
  interface FastifyInstance {
    /** Graceful-shutdown state, flipped by src/server.ts on SIGTERM/SIGINT. */
    lifecycle: { draining: boolean, beginDraining: () => void }
  }
}

/** Whether the request arrived over HTTP/2 (then connection-specific headers are forbidden, RFC 9113 section 8.2.2). */
export function isHttp2 (req: IncomingMessage | Http2ServerRequest): boolean {
  return req.httpVersionMajor >= 2
}

/**
 * The HTTP/2 equivalent of `Connection: close` on one response: GOAWAY on the stream's session
 * (RFC 9113 section 6.8). Streams already open finish; the client opens new ones on a new connection.
 */
export function goAway (reply: FastifyReply): void {
  const session = (reply.request.raw as unknown as Http2ServerRequest).stream?.session
  if (session !== undefined && !session.closed && !session.destroyed) session.close()
}

/**
 * Draining: /readyz turns 503 at once (routes/health.ts reads `draining`), requests already on a
 * connection are still served but told `Connection: close` (HTTP/1.1) or sent GOAWAY (HTTP/2), so
 * keep-alive clients move elsewhere.
 */
export default fp(async function shutdownPlugin (app) {
  const lifecycle = {
    draining: false,
    beginDraining () { lifecycle.draining = true }
  }
  app.decorate('lifecycle', lifecycle)
  // Callback style: no promise per request on the hot path (docs/performance.md).
  app.addHook('onSend', (request, reply, payload, done) => {
    if (lifecycle.draining) {
      if (isHttp2(request.raw)) goAway(reply)
      else reply.header('connection', 'close')
    }
    done(null, payload)
  })
  const closeSessions = app.initialConfig.http2 === true ? trackSessions(app) : null
  app.addHook('preClose', async () => {
    lifecycle.draining = true
    closeSessions?.()
  })
}, { name: 'portcullis-shutdown', fastify: '5.x' })

/**
 * The HTTP/2 sessions of the TLS listener (TLS_CERT_FILE), for two things Node does not do itself:
 * - Idle sessions: a session without an open stream for the listener's keepAliveTimeout
 *   (IDLE_CONNECTION_TIMEOUT_MS, as for an idle HTTP/1.1 keep-alive connection) gets GOAWAY and
 *   closes. Node's own session timeout counts any silence, a slow stream's too, and is off.
 * - Shutdown: Fastify 5 on Node 20 does not send GOAWAY on an Http2SecureServer when it closes,
 *   and server.close() waits for every session: an idle h2 connection would hold the shutdown until
 *   the grace ran out. Every session gets GOAWAY at close; its open streams finish. (Idle HTTP/1.1
 *   keep-alive sockets on the same listener are closed by Node's allowHTTP1 close itself.)
 */
function trackSessions (app: FastifyInstance): () => void {
  const sessions = new Set<Http2Session>()
  // Read when a session falls idle: src/app.ts sets it; a test may shorten it.
  const listener = app.server as unknown as { keepAliveTimeout?: number }
  app.server.on('session', (session: Http2Session) => {
    sessions.add(session)
    let open = 0
    let idle: NodeJS.Timeout | null = null
    const goAwayWhenIdle = (): void => {
      const ms = listener.keepAliveTimeout ?? 0
      if (ms > 0) idle = setTimeout(() => { if (!session.closed && !session.destroyed) session.close() }, ms).unref()
    }
    goAwayWhenIdle()
    session.on('stream', (stream: Http2Stream) => {
      open++
      if (idle !== null) { clearTimeout(idle); idle = null }
      stream.once('close', () => { if (--open === 0 && !session.closed && !session.destroyed) goAwayWhenIdle() })
    })
    session.once('close', () => {
      sessions.delete(session)
      if (idle !== null) clearTimeout(idle)
    })
  })
  return () => {
    for (const session of sessions) if (!session.closed) session.close()
  }
}
