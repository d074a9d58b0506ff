/**
 * WebSocket upgrades on proxied routes. Fastify never routes an upgrade (Node hands the socket to
 * the server's `upgrade` listener), so this runs the proxy's own checks in the proxy's order
 * (path 400 → route 404 → load shedding 503 → token 401/403 → limit 429 → circuit 503), answers
 * a refusal as an HTTP/1.1 response on the raw socket, sends the handshake upstream with the
 * request header rules, and after the upstream's 101 joins the two sockets
 * (routes/websocket-tunnels.ts).
 */
import type { FastifyInstance } from 'fastify'
import { randomUUID } from 'node:crypto'
import { request as httpRequest, ServerResponse, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { RouteTable } from '../src/lib/route-table.js'
import type { CircuitBreaker, CircuitPermit } from '../src/lib/circuit.js'
import { badRequest, errorBody, type GatewayError } from '../src/lib/errors.js'
import { acceptableRequestId, downstreamResponseHeaders, upstreamRequestHeaders } from '../src/lib/forward-headers.js'
import { announcesBody, headerLines, isWebSocketUpgrade, rawHeaderLines, responseHead, type HeaderLine } from '../src/lib/upgrade-head.js'
import { bearerToken } from '../src/lib/bearer.js'
import { digestApiKey } from '../src/tokens/keys.js'
import type { TunnelStats } from '../src/lib/tunnel.js'
import { toGatewayError } from '../plugins/errors.js'
import { clientAddressOf, pathOnly } from '../plugins/request-log.js'
import type { AuthSubject } from '../plugins/auth.js'
import { GATEWAY_RESPONSE_HEADERS, admit } from './proxy.js'
import { classifyUpstreamError, upstreamFailureAnswer, type UpstreamFailureKind } from '../src/lib/upstream-failure.js'
import { resolveTarget, type ProxyTarget } from '../plugins/target.js'
import { TunnelRegistry } from './websocket-tunnels.js'

/** What the proxy scope shares with its upgrade handler: the same table, breakers and trust rule. */
export interface UpgradeScope {
  table: RouteTable
  breakers: ReadonlyMap<string, CircuitBreaker>
  trusts: (remoteAddress: string) => boolean
}

/** One upgrade request as it goes through the checks: the fields of its request log line. */
interface Upgrade extends AuthSubject {
  id: string
  started: number
  req: IncomingMessage
  socket: Socket
  status: number
  errorCode: string | null
  upstreamFailure: UpstreamFailureKind | null
  /** The RateLimit headers once the limiter allowed the request; they go on every later answer. */
  limitHeaders: Record<string, string>
}

/** Logged (status 499, as nginx does) when the client left before the gateway could answer. */
const CLIENT_GONE = 499

/** Listens for upgrades on the app's server; called once by routes/proxy.ts with its scope. */
export function attachWebSocketUpgrades (app: FastifyInstance, scope: UpgradeScope): void {
  const tunnels = new TunnelRegistry(app)
  clientAddresses.set(app, clientAddressOf(app.config.trustProxy))
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const s = socket as Socket
    s.on('error', () => {}) // a reset shows up as 'close'; nothing to answer
    if (isWebSocketUpgrade(req.method, req.headers)) {
      handleWebSocket(app, scope, tunnels, req, s, head).catch((err: unknown) => {
        app.log.error({ err }, 'websocket upgrade failed')
        s.destroy()
      })
    } else if (announcesBody(req.headers)) {
      // Node stopped parsing at the head: the body would have no reader. Refuse it plainly.
      refuse(s, badRequest(`Upgrade to ${String(req.headers.upgrade).slice(0, 40)} with a request body is not supported`), {
        'x-request-id': acceptableRequestId(req.headers['x-request-id']) ?? randomUUID()
      })
    } else {
      serveAsRequest(app, req, s)
    }
  }
  app.server.on('upgrade', onUpgrade)
  app.addHook('preClose', async () => { tunnels.beginShutdown(app.config.shutdownGraceMs) })
  app.addHook('onClose', async () => { app.server.off('upgrade', onUpgrade) })
}

/**
 * An upgrade to something other than WebSocket (h2c, …) without a body is served like any request,
 * as it was before the gateway listened for upgrades: the proxy strips `Upgrade` (hop-by-hop).
 */
function serveAsRequest (app: FastifyInstance, req: IncomingMessage, socket: Socket): void {
  const res = new ServerResponse(req)
  res.shouldKeepAlive = false // Node has already detached its parser from this socket
  res.assignSocket(socket)
  res.once('finish', () => { socket.destroySoon() })
  app.server.emit('request', req, res)
}

async function handleWebSocket (app: FastifyInstance, scope: UpgradeScope, tunnels: TunnelRegistry, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  const u: Upgrade = {
    id: acceptableRequestId(req.headers['x-request-id']) ?? randomUUID(),
    started: performance.now(),
    method: 'GET',
    raw: req,
    req,
    socket,
    target: null,
    consumer: null,
    rateLimit: null,
    status: 0,
    errorCode: null,
    upstreamFailure: null,
    limitHeaders: {}
  }
  let permit: CircuitPermit
  try {
    u.target = resolveTarget(scope.table, req.url ?? '')
    // Load shedding, where the under-pressure hook stands for other requests: before any Redis call.
    const shed = app.pressureRefusal()
    if (shed !== null) throw shed
    await app.authorize(u)
    if (u.rateLimit !== null) u.limitHeaders = app.rateLimitVerdict(u.rateLimit)
    permit = admit(scope.breakers.get(u.target.route.prefix) as CircuitBreaker)
  } catch (err) {
    const gwErr = toGatewayError(err as Error)
    if (gwErr.code === 'INTERNAL_ERROR') app.log.error({ reqId: u.id, err }, 'unhandled error')
    answerWithError(app, u, gwErr)
    return
  }
  if (socket.destroyed) {
    permit.release()
    finish(app, u, CLIENT_GONE)
    return
  }
  forward(app, scope, tunnels, u, u.target, permit, head)
}

/** Sends the handshake upstream and settles the permit with what comes back. */
function forward (app: FastifyInstance, scope: UpgradeScope, tunnels: TunnelRegistry, u: Upgrade, target: ProxyTarget, permit: CircuitPermit, clientHead: Buffer): void {
  const { req, socket } = u
  const { route } = target
  const upstream = new URL(route.upstream)
  const remoteAddress = socket.remoteAddress ?? ''
  const headers = upstreamRequestHeaders({ ...req.headers }, req.headers, {
    remoteAddress,
    protocol: (socket as Socket & { encrypted?: boolean }).encrypted === true ? 'https' : 'http',
    host: req.headers.host ?? '',
    trustProxy: scope.trusts(remoteAddress),
    requestId: u.id,
    consumerId: u.consumer?.id ?? null
  })
  // Hop-by-hop for any other request, but this hop is an upgrade too (RFC 9110 section 7.8).
  headers.connection = 'Upgrade'
  headers.upgrade = req.headers.upgrade
  headers.host = upstream.host // as reply-from does for every other request
  const options: RequestOptions & { rejectUnauthorized?: boolean } = {
    hostname: upstream.hostname.replace(/^\[|\]$/g, ''),
    port: upstream.port === '' ? undefined : Number(upstream.port),
    method: 'GET',
    path: target.path + target.query,
    headers,
    agent: false, // its own connection: it becomes the tunnel
    rejectUnauthorized: true // upstream TLS is verified, as the proxy's undici Agent does
  }
  const started = performance.now()
  const upReq: ClientRequest = (upstream.protocol === 'https:' ? httpsRequest : httpRequest)(options)
  let settled = false
  let timedOut = false
  const settle = (): boolean => {
    if (settled) return false
    settled = true
    clearTimeout(timer)
    socket.off('close', clientGone)
    return true
  }
  const clientGone = (): void => {
    if (!settle()) return
    upReq.destroy()
    permit.release() // says nothing about the upstream
    finish(app, u, CLIENT_GONE)
  }
  const timer = setTimeout(() => { timedOut = true; upReq.destroy(new Error('upstream timeout')) }, route.timeoutMs)
  socket.once('close', clientGone)

  upReq.on('upgrade', (res: IncomingMessage, upSocket: Socket, upHead: Buffer) => {
    if (!settle()) { upSocket.destroy(); return }
    permit.success()
    app.metrics.observeUpstream(route.prefix, (performance.now() - started) / 1000)
    if (res.statusCode !== 101) { // not a switch: nothing sane can follow on this connection
      upSocket.destroy()
      u.upstreamFailure = 'protocol'
      answerWithError(app, u, upstreamFailureAnswer('protocol', route.timeoutMs))
      return
    }
    const lines = gatewayHeaders(u, rawHeaderLines(res.rawHeaders))
    socket.write(responseHead(101, lines, res.statusMessage))
    u.status = 101
    const digest = digestOf(req)
    tunnels.open(socket, upSocket, clientHead, upHead, {
      digest,
      routesRev: u.rateLimit?.routesRev ?? '',
      routePrefix: route.prefix,
      path: target.path
    }, (stats) => { finish(app, u, 101, stats) })
    app.metrics.observeUpgrade(route.prefix, 101, (performance.now() - u.started) / 1000, null, null)
    app.metrics.observeDecisions(u)
  })

  upReq.on('response', (res: IncomingMessage) => {
    if (!settle()) { res.destroy(); return }
    permit.success() // a refusal is an answer: the upstream is there
    app.metrics.observeUpstream(route.prefix, (performance.now() - started) / 1000)
    const status = res.statusCode ?? 502
    const lines = gatewayHeaders(u, headerLines(downstreamResponseHeaders(res.headers, GATEWAY_RESPONSE_HEADERS)))
    lines.push(['connection', 'close']) // the body ends with the connection when it has no length
    socket.write(responseHead(status, lines, res.statusMessage))
    res.on('error', () => { socket.destroy() })
    res.pipe(socket)
    res.once('end', () => { socket.destroySoon() })
    socket.once('close', () => { res.destroy() })
    finish(app, u, status)
  })

  upReq.on('error', (err: Error & { code?: string }) => {
    if (!settle()) return
    const kind = timedOut ? 'timeout' : classifyUpstreamError(err)
    u.upstreamFailure = kind
    permit.failure()
    answerWithError(app, u, upstreamFailureAnswer(kind, route.timeoutMs))
  })
  upReq.end()
}

/** The upstream's header lines minus the ones the gateway owns, then X-Request-Id and RateLimit. */
function gatewayHeaders (u: Upgrade, lines: HeaderLine[]): HeaderLine[] {
  const out = lines.filter(([name]) => !GATEWAY_RESPONSE_HEADERS.has(name.toLowerCase()))
  out.push(['x-request-id', u.id], ...headerLines(u.limitHeaders))
  return out
}

/** The SHA-256 digest of the request's bearer key; authorize has already accepted it. */
function digestOf (req: IncomingMessage): string {
  const bearer = bearerToken(req.rawHeaders)
  if (!bearer.ok) throw new Error('digestOf runs after authorize accepted the token')
  return digestApiKey(bearer.token)
}

function answerWithError (app: FastifyInstance, u: Upgrade, err: GatewayError): void {
  u.errorCode = err.code
  if (!u.socket.destroyed) refuse(u.socket, err, { 'x-request-id': u.id, ...u.limitHeaders })
  finish(app, u, err.statusCode)
}

/** Writes the gateway's JSON error as a whole HTTP/1.1 response and closes the connection. */
function refuse (socket: Socket, err: GatewayError, headers: Record<string, string>): void {
  const body = JSON.stringify(errorBody(err))
  socket.end(responseHead(err.statusCode, headerLines({
    ...headers,
    ...err.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    date: new Date().toUTCString(),
    connection: 'close'
  })) + body)
  socket.destroySoon()
}

/**
 * One request log line per upgrade, in plugins/request-log.ts's shape: at once for a refusal,
 * when the tunnel ends for a 101 (with its duration, bytes and close reason).
 */
/** Per app: the client address of an upgrade, as the request log reads it for any request. */
const clientAddresses = new WeakMap<FastifyInstance, (req: IncomingMessage) => string>()

function finish (app: FastifyInstance, u: Upgrade, status: number, tunnel?: TunnelStats): void {
  const ms = Math.round((performance.now() - u.started) * 100) / 100
  if (tunnel === undefined) {
    app.metrics.observeUpgrade(u.target?.route.prefix ?? null, status, ms / 1000, u.upstreamFailure, u.errorCode)
    app.metrics.observeDecisions(u)
  }
  app.log.info({
    reqId: u.id,
    method: 'GET',
    path: u.target?.path ?? pathOnly(u.req.url),
    route: u.target?.route.prefix ?? null,
    status,
    code: u.errorCode ?? undefined,
    remoteAddress: clientAddresses.get(app)?.(u.req),
    ms: tunnel === undefined ? ms : Math.round((ms - tunnel.ms) * 100) / 100,
    consumer: u.consumer?.id,
    rateLimit: u.rateLimit?.status,
    upstreamFailure: u.upstreamFailure ?? undefined,
    websocket: tunnel === undefined
      ? undefined
      : { closed: tunnel.reason, ms: Math.round(tunnel.ms), bytesIn: tunnel.bytesIn, bytesOut: tunnel.bytesOut }
  }, 'request')
}
