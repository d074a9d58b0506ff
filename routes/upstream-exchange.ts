/**
 * One proxied request's guards on its upstream exchange (docs/forwarding.md). This is the only
 * clock of the time to the response head (undici's own headers timeout would start only once a
 * connection is assigned, and would blame the upstream for a client that uploads slowly):
 *  - the route timeout counts from the handler's start, the wait for a free pooled connection
 *    included; without a body it is one deadline to the response head;
 *  - with a body, once connected, it stops while the gateway waits on the client (the client body
 *    idle timeout, CLIENT_BODY_TIMEOUT_MS, runs then) and restarts in full while the upstream does
 *    not take the body and after the body's last byte;
 *  - a client that leaves aborts the upstream request, whether queued or running.
 * When a guard trips before the response started, the gateway answers at once (504, 408): undici
 * calls back for a queued request only when a connection frees up, which is the wait being cut.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import { guardBody, type BodyWait } from '../src/lib/body-idle.js'
import { bodyIdleTimeout, upstreamTimeout } from '../src/lib/errors.js'
import type { CircuitPermit } from '../src/lib/circuit.js'
import type { ExchangeHooks } from '../src/upstream-agent.js'

/** Why a guard cut the exchange: no connection in time, no response head in time, an idle client. */
type Trip = 'pool' | 'timeout' | 'body-idle'

export interface ExchangeOptions {
  /** The route's timeout (UPSTREAM_TIMEOUT_MS or the route's own). */
  timeoutMs: number
  /** CLIENT_BODY_TIMEOUT_MS. */
  bodyIdleMs: number
  /** The route breaker's permit for this request; settled here when a guard trips or the client leaves. */
  permit: CircuitPermit
  /** True when requests to this upstream wait for a free pooled connection (read only when the deadline trips unconnected). */
  poolSaturated: () => boolean
}

const tripped = (what: string): Error => Object.assign(new Error(what), { code: 'PORTCULLIS_EXCHANGE_ABORTED' })

/** Made by the proxy handler before `reply.from`; hand `hooks` to the UpstreamAgent for that call. */
export class UpstreamExchange {
  readonly hooks: ExchangeHooks
  readonly #controller = new AbortController()
  readonly #request: FastifyRequest
  readonly #reply: FastifyReply
  readonly #opts: ExchangeOptions
  #body: BodyWait | 'none' = 'none'
  #deadline: NodeJS.Timeout | null = null
  #connected = false
  #responding = false
  #settled = false

  constructor (request: FastifyRequest, reply: FastifyReply, opts: ExchangeOptions) {
    this.#request = request
    this.#reply = reply
    this.#opts = opts
    this.hooks = {
      signal: this.#controller.signal,
      onConnect: () => { this.#onConnect() },
      onResponseHead: () => { this.#responding = true; this.#stopDeadline() }
    }
    this.#startDeadline()
    const body = request.body
    if (body instanceof Readable) {
      request.body = guardBody(body, opts.bodyIdleMs, () => { this.#trip('body-idle') }, (on) => { this.#onBodyWait(on) })
    }
    reply.raw.once('close', () => { this.#onClose() })
  }

  /**
   * True once the exchange was settled here (a guard answered, or the client left): an error that
   * reply-from reports afterwards is the consequence of that abort, not news about the upstream.
   */
  get settled (): boolean {
    return this.#settled
  }

  #onConnect (): void {
    this.#connected = true
    // The queue wait is over. A body still streaming is timed from here on by what it waits on;
    // a request without one (or whose body already ended) keeps its one deadline.
    if (this.#body === 'client') this.#stopDeadline()
    else if (this.#body === 'reader') this.#startDeadline()
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
    this.#stopDeadline()
    this.#deadline = setTimeout(() => { this.#trip(this.#connected || !this.#opts.poolSaturated() ? 'timeout' : 'pool') }, this.#opts.timeoutMs)
  }

  #stopDeadline (): void {
    if (this.#deadline !== null) clearTimeout(this.#deadline)
    this.#deadline = null
  }

  #trip (trip: Trip): void {
    this.#stopDeadline()
    if (this.#settled) return
    if (this.#responding || this.#reply.raw.headersSent) {
      // The response has started: it can only be cut (never end cleanly); abort the upstream side.
      this.#controller.abort(tripped(trip))
      return
    }
    this.#settled = true
    const { permit, timeoutMs, bodyIdleMs } = this.#opts
    if (trip === 'timeout') {
      permit.failure()
      this.#request.upstreamFailure = 'timeout'
    } else {
      // Neither a full pool nor an idle client says anything about the upstream's health.
      permit.release()
      if (trip === 'pool') this.#request.upstreamFailure = 'pool'
    }
    this.#reply.send(trip === 'body-idle' ? bodyIdleTimeout(bodyIdleMs) : upstreamTimeout(timeoutMs))
    this.#controller.abort(tripped(trip))
  }

  #onClose (): void {
    this.#stopDeadline()
    if (this.#reply.raw.writableFinished) return
    // The client left (or its response was cut): nothing will read the answer, free the upstream side.
    if (!this.#settled && !this.#responding) {
      this.#settled = true
      this.#opts.permit.release()
    }
    this.#controller.abort(tripped('client gone'))
  }
}
