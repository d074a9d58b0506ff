import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest, Http2Session } from 'node:http2'

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
 * Fastify 5 on Node 20 does not send GOAWAY on an Http2SecureServer (TLS_CERT_FILE) when it closes,
 * and server.close() waits for every session: an idle h2 connection would hold the shutdown until
 * the grace ran out. Every session gets GOAWAY at close; its open streams finish. (Idle HTTP/1.1
 * keep-alive sockets on the same listener are closed by Node's allowHTTP1 close itself.)
 */
function trackSessions (app: FastifyInstance): () => void {
  const sessions = new Set<Http2Session>()
  app.server.on('session', (session: Http2Session) => {
    sessions.add(session)
    session.once('close', () => { sessions.delete(session) })
  })
  return () => {
    for (const session of sessions) if (!session.closed) session.close()
  }
}
