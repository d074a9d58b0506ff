/**
 * The response half of the proxy: what reaches the client once the upstream's response head has
 * arrived (reply-from's `onResponse`). reply-from's own default, `reply.send(res.stream)`, let an
 * error of the body stream reach Fastify's error handler: a reset right after the head became a
 * 500 INTERNAL_ERROR carrying the upstream's headers, the breaker had already counted a success,
 * and a reset mid-body was neither logged nor counted. Here:
 *
 *   head ─┬─ no body (HEAD, 1xx, 204, 304): the head alone; whatever undici says of the body
 *         │  (a 304 stating Content-Length: 5 is a "length mismatch" to it) is not the client's concern
 *         ├─ a body of known length up to RELAY_BUFFER_BYTES: gathered, then sent whole
 *         │    └─ it fails before its end: nothing was sent, the head is taken back → 502/504
 *         ├─ any other body fails before its first byte: nothing was sent, the head is taken back → 502/504
 *         ├─ first byte (or the end): handed to Fastify's send as a stream that never errors
 *         │    └─ the body fails later: the client's response is aborted, never ended cleanly
 *         └─ the end: the upstream's trailers are added, the response ends, the breaker hears success
 *
 * The body goes through Fastify's own send path, so onSend hooks (draining) and onResponse hooks
 * (request log, metrics) run as for any answer.
 */
import type { FastifyReply } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import { PassThrough, type Readable } from 'node:stream'
import type { GatewayError } from '../src/lib/errors.js'
import { forwardableTrailers, responseHasBody, trailerAnnouncement, trailerFields } from '../src/lib/forward-headers.js'

/**
 * Bodies that state a Content-Length up to this many bytes are gathered and sent in one piece
 * (as nginx's proxy buffering does): no stream between upstream and client, and a failure before
 * the last byte is still a clean 502. Larger or unsized bodies stream.
 */
export const RELAY_BUFFER_BYTES = 64 * 1024

/** The upstream response as reply-from hands it to `onResponse`. */
export interface UpstreamResponse { statusCode: number, headers: IncomingHttpHeaders, stream: Readable }

/** What the relay reports to the exchange, which owns the breaker permit and the failure accounting. */
export interface RelayOutcome {
  /** Names the upstream's head put on the reply, taken back when the gateway answers with an error instead. */
  readonly upstreamHeaders: readonly string[]
  /** The upstream's trailer fields once the body ended (undici's raw form), or null. */
  readonly rawTrailers: Buffer[] | null
  /** The body ended cleanly. */
  complete: () => void
  /** The upstream failed after its head: record it; returns the answer for a client that got nothing yet. */
  failed: (err: Error) => GatewayError
  /** The client left before the body ended: no news about the upstream. */
  clientGone: () => void
}

/** Called by the exchange when the client's response closed: stops the relay if the body had not ended. */
export type RelayClose = () => void

const noop = (): void => {}

/** Name/value pairs as a header object, a repeated name becoming a list. */
function trailerObject (pairs: Array<[string, string]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of pairs) {
    const prior = out[name]
    out[name] = prior === undefined ? value : [...(Array.isArray(prior) ? prior : [prior]), value]
  }
  return out
}

/** Takes the upstream's head back off the reply, for an error answer instead. */
function takeBackHead (reply: FastifyReply, outcome: RelayOutcome): void {
  for (const name of outcome.upstreamHeaders) reply.removeHeader(name)
  reply.removeHeader('trailer')
}

/** The stated body length when it is small enough to gather, else -1. */
function bufferedLength (headers: IncomingHttpHeaders): number {
  const stated = headers['content-length']
  if (stated === undefined) return -1
  const n = Number(stated)
  return Number.isSafeInteger(n) && n >= 0 && n <= RELAY_BUFFER_BYTES ? n : -1
}

/**
 * Relays the upstream's response to the client. Returns what the exchange calls when the client's
 * response closes (a client that left stops the relay and frees the upstream side).
 */
export function relayResponse (reply: FastifyReply, res: UpstreamResponse, gatewayOwned: ReadonlySet<string>, outcome: RelayOutcome): RelayClose {
  const body = res.stream
  const request = reply.request.raw
  if (!responseHasBody(res.statusCode, request.method ?? 'GET')) {
    body.on('error', noop)
    body.resume()
    // RFC 9110 section 8.6: no Content-Length on a 204; on a 304 it states the representation's length.
    if (res.statusCode === 204) reply.removeHeader('content-length')
    outcome.complete()
    reply.send()
    return noop
  }
  const length = bufferedLength(res.headers)
  return length >= 0 ? relayBuffered(reply, body, length, outcome) : relayStream(reply, res, gatewayOwned, outcome)
}

/** A small sized body: gathered, then sent as one Buffer; any failure before its end is a clean 502/504. */
function relayBuffered (reply: FastifyReply, body: Readable, length: number, outcome: RelayOutcome): RelayClose {
  let first: Buffer | null = null
  let chunks: Buffer[] | null = null
  let done = false
  body.on('data', (chunk: Buffer) => {
    if (first === null) first = chunk
    else if (chunks === null) chunks = [first, chunk]
    else chunks.push(chunk)
  })
  body.on('end', () => {
    if (done) return
    done = true
    outcome.complete()
    reply.send(chunks !== null ? Buffer.concat(chunks, length) : first ?? Buffer.alloc(0))
  })
  body.on('error', (err: Error) => {
    if (done) return
    done = true
    const answer = outcome.failed(err)
    takeBackHead(reply, outcome)
    reply.send(answer)
  })
  return () => {
    if (done) return
    done = true
    outcome.clientGone()
    body.destroy()
  }
}

/** Any other body: streamed to the client from its first byte, trailers forwarded at its end. */
function relayStream (reply: FastifyReply, res: UpstreamResponse, gatewayOwned: ReadonlySet<string>, outcome: RelayOutcome): RelayClose {
  const body = res.stream
  const request = reply.request.raw
  const announced = trailerAnnouncement(res.headers, { statusCode: res.statusCode, method: request.method ?? 'GET', httpVersion: request.httpVersion }, gatewayOwned)
  if (announced !== undefined) reply.header('trailer', announced)
  const client = reply.raw
  const out = new PassThrough()
  // waiting: no byte yet · handing: the first bytes are held one turn, so an error in the same
  // packet still gets a clean 502 · sent: Fastify has the stream · done: nothing more to decide.
  let phase: 'waiting' | 'handing' | 'sent' | 'done' = 'waiting'

  const handOver = (): void => {
    if (phase !== 'waiting') return
    phase = 'handing'
    setImmediate(() => {
      if (phase !== 'handing') return
      phase = 'sent'
      reply.send(out)
    })
  }
  body.on('data', (chunk: Buffer) => {
    if (phase === 'done') return
    handOver()
    if (!out.write(chunk)) body.pause()
  })
  out.on('drain', () => { body.resume() })
  body.on('end', () => {
    if (phase === 'done') return
    handOver()
    const trailers = outcome.rawTrailers === null ? [] : forwardableTrailers(trailerFields(outcome.rawTrailers), gatewayOwned)
    if (trailers.length > 0) {
      // Node writes them after the last chunk, and only on a chunked response.
      // HTTP/2 sends them as a trailing HEADERS frame (RFC 9113 section 8.1); its addTrailers takes an object.
      const given = request.httpVersionMajor >= 2 ? trailerObject(trailers) : trailers
      try { client.addTrailers(given) } catch (err) { reply.log.debug({ err }, 'upstream trailers not forwarded') }
    }
    outcome.complete()
    out.end()
  })
  body.on('error', (err: Error) => {
    if (phase === 'done') return
    const answer = outcome.failed(err)
    if (phase === 'sent') { phase = 'done'; abort(reply, out, err); return }
    phase = 'done'
    out.destroy()
    takeBackHead(reply, outcome)
    reply.send(answer)
  })
  // The client left: before the hand-over nobody else notices, after it Fastify destroys `out`.
  const gone = (): void => {
    if (phase === 'done' || client.writableFinished) return
    phase = 'done'
    outcome.clientGone()
    body.destroy()
  }
  out.once('close', () => { if (!out.writableFinished) gone() })
  return gone
}

/**
 * Ends the client's response without a clean end: the connection is destroyed, so a chunked body
 * lacks its last chunk and a sized one comes up short. A destroyed response emits neither 'finish'
 * nor 'error', the events Fastify's onResponse hooks wait for; 'error' is emitted for them so the
 * request line and the metrics record the failure.
 */
function abort (reply: FastifyReply, out: PassThrough, err: Error, turns = 0): void {
  const client = reply.raw
  if (!client.headersSent && !client.destroyed && turns < 100) {
    // Fastify holds the stream but has not written the head yet (its onSend hooks are running):
    // the bytes already in `out` make it do so within a few turns; abort right after.
    setImmediate(() => { abort(reply, out, err, turns + 1) })
    return
  }
  client.destroy()
  out.destroy()
  if (client.listenerCount('error') > 0) client.emit('error', err)
}
