import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest, Http2Session } from 'node:http2'
import type { Socket } from 'node:net'

declare module 'fastify' {
  interface FastifyInstance {
    /** Graceful-shutdown state, flipped by src/server.ts on SIGTERM/SIGINT. */
    lifecycle: { draining: boolean, beginDraining: () => void }
  }
}

/** Whether the request arrived over HTTP/2 (then connection-specific headers are forbidden, RFC 9113 §8.2.2). */
export function isHttp2 (req: IncomingMessage | Http2ServerRequest): boolean {
  return req.httpVersionMajor >= 2
}

/**
 * The HTTP/2 equivalent of `Connection: close` on one response: GOAWAY on the stream's session
 * (RFC 9113 §6.8). Streams already open finish; the client opens new ones on a new connection.
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
  app.addHook('onSend', async (request, reply) => {
    if (!lifecycle.draining) return
    if (isHttp2(request.raw)) goAway(reply)
    else reply.header('connection', 'close')
  })
  const closeTls = app.initialConfig.http2 === true ? trackTlsConnections(app, lifecycle) : null
  app.addHook('preClose', async () => {
    lifecycle.draining = true
    closeTls?.()
  })
}, { name: 'portcullis-shutdown', fastify: '5.x' })

/**
 * Node's Http2SecureServer (TLS_CERT_FILE) has no closeIdleConnections, and Fastify 5 on Node 20
 * neither sends GOAWAY nor closes idle HTTP/1.1 keep-alive sockets on it: server.close() would wait
 * for them until the grace ran out. Tracked here: at close every HTTP/2 session gets GOAWAY (its
 * open streams finish), idle HTTP/1.1 sockets are closed, busy ones once their response is done
 * (it carries `Connection: close`). Upgraded sockets (WebSocket tunnels) have their own grace.
 */
function trackTlsConnections (app: FastifyInstance, lifecycle: { draining: boolean }): () => void {
  const server = app.server as unknown as NodeJS.EventEmitter
  const sessions = new Set<Http2Session>()
  const h1 = new Map<Socket, number>() // socket → requests in flight
  server.on('session', (session: Http2Session) => {
    sessions.add(session)
    session.once('close', () => { sessions.delete(session) })
  })
  server.on('secureConnection', (socket: Socket & { alpnProtocol?: string | false }) => {
    if (socket.alpnProtocol === 'h2') return
    h1.set(socket, 0)
    socket.once('close', () => { h1.delete(socket) })
  })
  server.on('request', (req: IncomingMessage, res: NodeJS.EventEmitter) => {
    if (isHttp2(req)) return
    const socket = req.socket
    const busy = h1.get(socket)
    if (busy === undefined) return
    h1.set(socket, busy + 1)
    res.once('close', () => {
      const left = (h1.get(socket) ?? 1) - 1
      if (!h1.has(socket)) return
      h1.set(socket, left)
      if (lifecycle.draining && left === 0) socket.destroy()
    })
  })
  // The tunnel registry (routes/websocket-tunnels.ts) owns an upgraded socket and its grace.
  server.on('upgrade', (req: IncomingMessage) => { h1.delete(req.socket) })
  return () => {
    for (const session of sessions) if (!session.closed) session.close()
    for (const [socket, busy] of h1) if (busy === 0) socket.destroy()
  }
}
