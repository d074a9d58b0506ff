/**
 * The response half of the proxy: what reaches the client once the upstream's response head has
 * arrived (reply-from's `onResponse`). reply-from's own default, `reply.send(res.stream)`, let an
 * error of the body stream reach Fastify's error handler: a reset right after the head became a
 * 500 INTERNAL_ERROR carrying the upstream's headers, the breaker had already counted a success,
 * and a reset mid-body was neither logged nor counted. Here:
 *
 *   head ─┬─ no body (HEAD, 1xx, 204, 304): the head alone; whatever undici says of the body
 *         │  (a 304 stating Content-Length: 5 is a "length mismatch" to it) is not the client's concern
 *         ├─ the body fails before its first byte: nothing was sent, the head is taken back → 502/504
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
import { forwardableTrailers, responseHasBody, trailerAnnouncement } from '../src/lib/forward-headers.js'

/** The upstream response as reply-from hands it to `onResponse`. */
export interface UpstreamResponse { statusCode: number, headers: IncomingHttpHeaders, stream: Readable }

/** What the relay reports to the route, which owns the breaker permit and the failure accounting. */
export interface RelayOutcome {
  /** The body ended cleanly. */
  complete: () => void
  /** The upstream failed after its head: record it; returns the answer for a client that got nothing yet. */
  failed: (err: Error) => GatewayError
  /** The client left before the body ended: no news about the upstream. */
  clientGone: () => void
}

const trailersOfBody = new WeakMap<Readable, Record<string, string | string[] | undefined>>()

/** Notes the trailer object undici fills in when a body ends, for the relay to forward. */
export function rememberTrailers (body: Readable, trailers: Record<string, string | string[] | undefined>): void {
  trailersOfBody.set(body, trailers)
}

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

/**
 * Relays the upstream's response to the client. `upstreamHeaders` are the names the upstream's head
 * put on the reply, taken back when the gateway answers with an error instead.
 */
export function relayResponse (reply: FastifyReply, res: UpstreamResponse, upstreamHeaders: readonly string[],
  gatewayOwned: ReadonlySet<string>, outcome: RelayOutcome): void {
  const body = res.stream
  const request = reply.request.raw
  if (!responseHasBody(res.statusCode, request.method ?? 'GET')) {
    body.on('error', noop)
    body.resume()
    // RFC 9110 section 8.6: no Content-Length on a 204; on a 304 it states the representation's length.
    if (res.statusCode === 204) reply.removeHeader('content-length')
    outcome.complete()
    reply.send()
    return
  }

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
    const trailers = forwardableTrailers(trailersOfBody.get(body) ?? {}, gatewayOwned)
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
    for (const name of upstreamHeaders) reply.removeHeader(name)
    reply.removeHeader('trailer')
    reply.send(answer)
  })
  // The client left: before the hand-over nobody else notices, after it Fastify destroys `out`.
  const gone = (): void => {
    if (phase === 'done' || client.writableFinished) return
    phase = 'done'
    outcome.clientGone()
    body.destroy()
  }
  client.once('close', gone)
  out.once('close', () => { if (!out.writableFinished) gone() })
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
