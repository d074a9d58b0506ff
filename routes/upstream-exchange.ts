/**
 * One proxied request's exchange with its upstream, in one object (docs/forwarding.md,
 * docs/performance.md): undici's handler for the request (src/upstream-agent.ts), its guards, its
 * place among the token's requests in flight, its breaker permit, and the relay's outcome
 * (routes/proxy-response.ts).
 *
 * This is the only clock of an upstream request (undici's own headers timeout would start only
 * once a connection is assigned, and would blame the upstream for a client that uploads slowly):
 *  - the route timeout counts from the handler's start, the wait for a free pooled connection
 *    included; without a body it is one deadline to the response head;
 *  - with a body, once connected, it stops while the gateway waits on the client (the client body
 *    idle timeout, CLIENT_BODY_TIMEOUT_MS, runs then) and restarts in full while the upstream does
 *    not take the body and after the body's last byte;
 *  - from the response head to its end it is an idle timeout: it restarts in full with each chunk
 *    of the response body (504 when nothing was sent to the client yet, else the response is cut);
 *  - a client that leaves aborts the upstream request, whether queued or running.
 * When a guard trips before the response started, the gateway answers at once (504, 408): undici
 * calls back for a queued request only when a connection frees up, which is the wait being cut.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import { guardBody, type BodyWait } from '../src/lib/body-idle.js'
import { bodyIdleTimeout, upstreamTimeout, type GatewayError } from '../src/lib/errors.js'
import type { CircuitPermit } from '../src/lib/circuit.js'
import type { InFlightLimiter } from '../src/lib/in-flight.js'
import { classifyUpstreamError, upstreamFailureAnswer } from '../src/lib/upstream-failure.js'
import { UpstreamObserver } from '../src/upstream-agent.js'
import type { RelayClose, RelayOutcome } from './proxy-response.js'

/** Why a guard cut the exchange: no connection in time, no response head in time, an idle client. */
type Trip = 'pool' | 'timeout' | 'body-idle'

/** What an exchange needs of its route, made once per route at start (routes/proxy.ts). */
export interface ExchangeRoute {
  /** The route's timeout (UPSTREAM_TIMEOUT_MS or the route's own). */
  readonly timeoutMs: number
  /** CLIENT_BODY_TIMEOUT_MS. */
  readonly bodyIdleMs: number
  /** True when requests to this upstream wait for a free pooled connection (read only when the deadline trips unconnected). */
  readonly poolSaturated: () => boolean
}

const tripped = (what: string): Error => Object.assign(new Error(what), { code: 'PORTCULLIS_EXCHANGE_ABORTED' })
/** The upstream sent no response body byte for the route timeout (classified `timeout`, src/lib/upstream-failure.ts). */
const bodyTimedOut = (): Error => Object.assign(new Error('no response body byte from the upstream within the route timeout'), { code: 'PORTCULLIS_UPSTREAM_BODY_TIMEOUT' })

function onDeadline (exchange: UpstreamExchange): void {
  exchange.deadlineReached()
}

/** Made by the proxy handler before `reply.from`; hand it to the UpstreamAgent for that call. */
export class UpstreamExchange extends UpstreamObserver implements RelayOutcome {
  readonly #request: FastifyRequest
  readonly #reply: FastifyReply
  readonly #route: ExchangeRoute
  readonly #permit: CircuitPermit
  /** The limiter this request holds a place in, until it is given back (then null). */
  #inFlight: InFlightLimiter | null
  readonly #consumerId: string
  #body: BodyWait | 'none' = 'none'
  #deadline: NodeJS.Timeout | null = null
  #connected = false
  #responding = false
  #settled = false
  #relayClose: RelayClose | null = null
  /** When the handler started: the upstream time runs from here to the response head (metrics). */
  readonly started = performance.now()
  /** Names the upstream's head put on the reply (set when the head is rewritten). */
  upstreamHeaders: readonly string[] = []

  /**
   * `inFlight` is the limiter the request already holds a place in under `consumerId` (null: none);
   * the place is given back exactly once, when the response is over however it ends.
   */
  constructor (request: FastifyRequest, reply: FastifyReply, route: ExchangeRoute, permit: CircuitPermit, inFlight: InFlightLimiter | null, consumerId: string) {
    super()
    this.#request = request
    this.#reply = reply
    this.#route = route
    this.#permit = permit
    this.#inFlight = inFlight
    this.#consumerId = consumerId
    this.#startDeadline()
    const body = request.body
    if (body instanceof Readable) {
      request.body = guardBody(body, route.bodyIdleMs, () => { this.#trip('body-idle') }, (on) => { this.#onBodyWait(on) })
    }
    const res = reply.raw
    res.on('close', () => { this.#onClose() })
    // A pipelined request whose response waits behind another one's gets no 'close' of its own
    // when the socket dies; its request does. (Its response has no socket yet.)
    if (res.socket === null) request.raw.on('close', () => { if (request.raw.socket?.destroyed !== false) this.#onClose() })
  }

  /**
   * True once the exchange was settled here (a guard answered, or the client left): an error that
   * reply-from reports afterwards is the consequence of that abort, not news about the upstream.
   */
  get settled (): boolean {
    return this.#settled
  }

  /** The relay's hook for the client's response closing (routes/proxy-response.ts). */
  relaying (close: RelayClose): void {
    this.#relayClose = close
  }

  /** The upstream's head arrived (reply-from's rewriteHeaders): decides a half-open probe. */
  answered (): void {
    this.#permit.answered() // the outcome is the body's (proxy-response.ts)
  }

  // RelayOutcome

  complete (): void {
    this.#permit.success()
  }

  /**
   * Any upstream failure, before or after the head: counted by kind and by the breaker (unless the
   * client had left, which says nothing about the upstream); the answer if none was sent.
   */
  failed (error: Error): GatewayError {
    const kind = classifyUpstreamError(error)
    this.#request.upstreamFailure = kind
    if (this.#request.raw.aborted || this.#reply.raw.destroyed) this.#permit.release()
    else this.#permit.failure()
    return upstreamFailureAnswer(kind, this.#route.timeoutMs)
  }

  clientGone (): void {
    this.#permit.release()
  }

  // UpstreamObserver

  protected connected (): void {
    this.#connected = true
    // The queue wait is over. A body still streaming is timed from here on by what it waits on;
    // a request without one (or whose body already ended) keeps its one deadline.
    if (this.#body === 'client') this.#stopDeadline()
    else if (this.#body === 'reader') this.#startDeadline()
  }

  protected responseHead (): void {
    this.#responding = true
    this.#startDeadline() // from here the idle time between response body chunks
  }

  protected responseData (): void {
    if (this.#deadline !== null) this.#deadline.refresh()
  }

  protected responseEnded (): void {
    this.#stopDeadline()
  }

  /** The deadline timer fired (module-level callback, no closure per request). */
  deadlineReached (): void {
    this.#deadline = null
    this.#trip(this.#connected || !this.#route.poolSaturated() ? 'timeout' : 'pool')
  }

  #onBodyWait (on: BodyWait): void {
    if (on !== 'end' || this.#connected) this.#body = on
    else this.#body = 'none' // ended while queued: like a request without a body from here on
    // Before a connection, the wait for it is what counts, however the body flows.
    if (!this.#connected || this.#responding) return
    if (on === 'client') this.#stopDeadline()
    else this.#startDeadline()
  }

  #startDeadline (): void {
    if (this.#deadline !== null) this.#deadline.refresh()
    else this.#deadline = setTimeout(onDeadline, this.#route.timeoutMs, this)
  }

  #stopDeadline (): void {
    if (this.#deadline !== null) clearTimeout(this.#deadline)
    this.#deadline = null
  }

  #trip (trip: Trip): void {
    this.#stopDeadline()
    if (this.#settled) return
    if (this.#responding || this.#reply.raw.headersSent) {
      // The response has started: abort the upstream side; the relay answers 504 if nothing was
      // sent yet, else cuts the response (never ends it cleanly).
      this.abortUpstream(this.#responding && trip === 'timeout' ? bodyTimedOut() : tripped(trip))
      return
    }
    this.#settled = true
    const { timeoutMs, bodyIdleMs } = this.#route
    if (trip === 'timeout') {
      this.#permit.failure()
      this.#request.upstreamFailure = 'timeout'
    } else {
      // Neither a full pool nor an idle client says anything about the upstream's health.
      this.#permit.release()
      if (trip === 'pool') this.#request.upstreamFailure = 'pool'
    }
    this.#reply.send(trip === 'body-idle' ? bodyIdleTimeout(bodyIdleMs) : upstreamTimeout(timeoutMs))
    this.abortUpstream(tripped(trip))
  }

  #onClose (): void {
    const inFlight = this.#inFlight
    if (inFlight !== null) {
      this.#inFlight = null
      inFlight.release(this.#consumerId)
    }
    this.#stopDeadline()
    if (this.#reply.raw.writableFinished) return
    const relayClose = this.#relayClose
    if (relayClose !== null) {
      this.#relayClose = null
      relayClose()
    }
    // The client left (or its response was cut): nothing will read the answer, free the upstream side.
    if (!this.#settled && !this.#responding) {
      this.#settled = true
      this.#permit.release()
    }
    this.abortUpstream(tripped('client gone'))
  }
}
