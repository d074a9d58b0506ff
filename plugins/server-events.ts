import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { acceptableRequestId } from '../src/lib/forward-headers.js'
import { expectationFailed, methodNotAllowed, type GatewayError } from '../src/lib/errors.js'
import { parserRefusal, rawHttpAnswer } from '../src/lib/raw-answer.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route sends `100 Continue` itself once it has admitted the request (the proxy does). */
    deferContinue?: boolean
  }
}

/** How long a refused connection may keep sending before it is dropped (its answer is already out). */
const LINGER_MS = 2000

/** Sockets already answered by `answerOnSocket`: the parser keeps failing on whatever follows. */
const answered = new WeakSet<Duplex>()
/** Requests Node would have answered `100 Continue` at once; the gateway does it once admitted. */
const awaitingContinue = new WeakSet<IncomingMessage>()
/** Requests with an Expect other than 100-continue: answered 417. */
const unmetExpectation = new WeakSet<IncomingMessage>()

/**
 * Sends `100 Continue` to a client waiting for it, once: routes with `deferContinue` call it when
 * every check has passed, just before the body is read.
 */
export function sendContinue (reply: FastifyReply): void {
  if (awaitingContinue.delete(reply.request.raw)) reply.raw.writeContinue()
}

/**
 * Fastify's `clientErrorHandler` (src/app.ts): a request Node's parser refused gets the gateway's
 * JSON answer, once any response in flight on the connection has gone out (a request pipelined
 * before the bad bytes was executed: its client must see its answer, or it retries it).
 */
export function clientErrorHandler (this: FastifyInstance, err: NodeJS.ErrnoException, socket: Duplex): void {
  const gwErr = parserRefusal(err.code)
  if (gwErr === null || socket.destroyed) {
    socket.destroy()
    return
  }
  // `err` is never logged: its rawPacket holds the client's bytes, an Authorization header included.
  answerOnSocket(this, socket, gwErr, randomUUID(), null, err.code ?? null)
}

/**
 * Writes `gwErr` once the response in flight (if any) is done, closes the connection, and writes
 * the request line and metrics the other answers get from their hooks.
 */
function answerOnSocket (app: FastifyInstance, socket: Duplex, gwErr: GatewayError, reqId: string, method: string | null, parserError: string | null): void {
  if (answered.has(socket)) return
  answered.add(socket)
  socket.pause() // nothing more is parsed from this connection
  afterInFlight(socket, () => {
    if (!socket.writable) {
      socket.destroy()
      return
    }
    socket.end(rawHttpAnswer(gwErr, reqId))
    // Drain what the client still sends, so closing does not reset the connection (and drop the answer).
    socket.removeAllListeners('data')
    socket.resume()
    const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref()
    socket.once('close', () => clearTimeout(timer))
    // No header was parsed (or trusted) yet: the peer is the client address.
    app.log.info({ reqId, method, path: null, route: null, status: gwErr.statusCode, ms: 0, code: gwErr.code, remoteAddress: (socket as { remoteAddress?: string }).remoteAddress, parserError: parserError ?? undefined }, 'request')
    app.metrics.observeRequest('unmatched', method ?? '', gwErr.statusCode, 0, null, gwErr.code)
  })
}

/**
 * Runs `then` once no response is in flight on `socket`. Node keeps the response being written as
 * the socket's `_httpMessage` and hands the socket to the next queued one when it finishes.
 */
function afterInFlight (socket: Duplex, then: () => void): void {
  const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage
  if (current === null || current === undefined || current.writableFinished) {
    then()
    return
  }
  if (!current.req.complete) {
    // The bad bytes were inside this request's own body: it cannot complete. Its client gets the
    // refusal if nothing of its answer went out yet; otherwise the connection just ends.
    if (current.headersSent) socket.destroy()
    else then()
    return
  }
  const next = (): void => {
    socket.off('close', gone)
    afterInFlight(socket, then)
  }
  const gone = (): void => { current.off('finish', next) }
  current.once('finish', next)
  socket.once('close', gone)
}

/**
 * The HTTP server's own events, brought into the gateway's answers: CONNECT is a 405 (Node would
 * close the socket without a word), and `Expect: 100-continue` waits for the gateway's checks
 * instead of being answered by Node before any of them ran. Parser refusals come through
 * `clientErrorHandler`, which Fastify takes as a server option.
 */
export default fp(async function serverEventsPlugin (app) {
  app.server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const allow = app.supportedMethods.filter((m) => m !== 'CONNECT').join(', ')
    const reqId = acceptableRequestId(req.headers['x-request-id']) ?? randomUUID()
    socket.on('error', () => {}) // a client that resets meanwhile is no error of the gateway's
    answerOnSocket(app, socket, methodNotAllowed('CONNECT', allow), reqId, 'CONNECT', null)
  })
  // With a listener, Node neither writes `100 Continue` nor emits 'request': route it as usual.
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req)
    app.server.emit('request', req, res)
  })
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    unmetExpectation.add(req)
    app.server.emit('request', req, res)
  })
  // Runs after every onRequest check (path, route, token, limit) and before any body byte is read.
  app.addHook('preParsing', (request: FastifyRequest, reply: FastifyReply, payload, done) => {
    if (unmetExpectation.has(request.raw)) {
      done(expectationFailed())
      return
    }
    if (request.routeOptions.config.deferContinue !== true) sendContinue(reply)
    done(null, payload)
  })
}, { name: 'portcullis-server-events', fastify: '5.x', dependencies: ['portcullis-errors', 'portcullis-metrics'] })
