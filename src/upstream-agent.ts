/**
 * The one undici Agent every route's upstream requests go through: TLS verified, no pipelining,
 * UPSTREAM_MAX_CONNECTIONS per upstream origin (docs/configuration.md). reply-from builds and
 * dispatches each request itself, synchronously inside `reply.from()`; `next(hooks)` just before
 * that call hands the request its abort signal and connection/response events, so the proxy can
 * abort a request that still waits in the queue for a connection and can tell that wait apart
 * from the upstream's own time.
 */
import { Agent, type Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'

/** What one proxied request hands to its upstream exchange. */
export interface ExchangeHooks {
  /** Aborts the upstream request, whether it waits for a connection or is running. */
  signal: AbortSignal
  /** A connection was assigned: the request is being written to the upstream. */
  onConnect: () => void
  /** The upstream's response head arrived. */
  onResponseHead: () => void
}

type RequestCallback = (err: Error | null, data?: Dispatcher.ResponseData) => void

const kHooks = Symbol('portcullis.exchange-hooks')

/** reply-from's `undici` option: an object with undici's `request`, plus the per-request hand-over. */
export class UpstreamAgent {
  readonly #agent: Agent
  readonly #dispatcher: Dispatcher
  #next: ExchangeHooks | null = null

  constructor (connectionsPerOrigin: number) {
    this.#agent = new Agent({ connect: { rejectUnauthorized: true }, connections: connectionsPerOrigin, pipelining: 1 })
    this.#dispatcher = this.#agent.compose((dispatch) => (opts, handler) => {
      const hooks = (opts as { [kHooks]?: ExchangeHooks })[kHooks]
      return dispatch(opts, hooks === undefined ? handler : new HookedHandler(handler, hooks))
    })
  }

  /** The hooks of the request that the next `request` call (reply-from, synchronously) dispatches. */
  next (hooks: ExchangeHooks | null): void {
    this.#next = hooks
  }

  /**
   * Called by reply-from: undici's `request`, with the handed-over signal and hooks when there are
   * any; the time to the response head is then the caller's to keep (routes/upstream-exchange.ts),
   * so undici's own headers timeout is off for it.
   */
  request (opts: Dispatcher.RequestOptions, callback: RequestCallback): void {
    const hooks = this.#next
    this.#next = null
    const withHooks = hooks === null ? opts : { ...opts, signal: hooks.signal, headersTimeout: 0, [kHooks]: hooks }
    this.#dispatcher.request(withHooks, callback as never)
  }

  /** True when every pooled connection to `origin` is busy and requests wait in line for one. */
  saturated (origin: string): boolean {
    const stats = this.#agent.stats[origin]
    if (stats === undefined) return false
    // undici makes a Pool per origin, or a single Client when the limit is 1 connection.
    return 'queued' in stats ? stats.queued > 0 : stats.running > 0 && stats.pending > 0
  }

  /** Closes every pooled connection once its request is done. */
  async close (): Promise<void> {
    await this.#agent.close()
  }
}

/** Passes every event on to undici's own handler, telling the hooks about the connection and the head. */
class HookedHandler implements Dispatcher.DispatchHandler {
  constructor (private readonly inner: Dispatcher.DispatchHandler, private readonly hooks: ExchangeHooks) {}

  onRequestStart (controller: Dispatcher.DispatchController, context: unknown): void {
    this.hooks.onConnect()
    this.inner.onRequestStart?.(controller, context)
  }

  onRequestUpgrade (controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    this.inner.onRequestUpgrade?.(controller, statusCode, headers, socket)
  }

  onResponseStart (controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (statusCode >= 200) this.hooks.onResponseHead() // a 1xx is not the answer yet
    this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage)
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.inner.onResponseData?.(controller, chunk)
  }

  onResponseEnd (controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.inner.onResponseEnd?.(controller, trailers)
  }

  onResponseError (controller: Dispatcher.DispatchController, error: Error): void {
    this.inner.onResponseError?.(controller, error)
  }
}
