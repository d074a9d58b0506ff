/**
 * The one undici Agent every route's upstream requests go through: TLS verified, no pipelining,
 * UPSTREAM_MAX_CONNECTIONS per upstream origin (docs/configuration.md). reply-from builds and
 * dispatches each request itself, synchronously inside `reply.from()`; `next(observer)` just before
 * that call hands the request its observer (routes/upstream-exchange.ts), which undici then calls
 * instead of its own handler and which passes every event on. The observer hears the connection
 * and the response head, keeps undici's abort function, and can abort a request that still waits
 * in the queue for a connection (it is aborted the moment one is assigned, before a byte is written:
 * undici does the same for an aborted signal).
 *
 * No AbortController, no interceptor chain: one object per request (docs/performance.md).
 */
import { Agent, type Dispatcher } from 'undici'

type RequestCallback = (err: Error | null, data?: Dispatcher.ResponseData) => void

/** undici's handler interface as its `request` API implements it (the callbacks a Client calls). */
interface UndiciHandler {
  onConnect: (abort: (err?: Error) => void, context?: unknown) => void
  onHeaders: (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string) => boolean
  onData: (chunk: Buffer) => boolean
  onComplete: (rawTrailers: Buffer[] | null) => void
  onError: (err: Error) => void
  onUpgrade?: (statusCode: number, rawHeaders: Buffer[], socket: unknown) => void
  onBodySent?: (chunk: unknown) => void
  onRequestSent?: () => void
  onResponseStarted?: () => void
}

/**
 * One upstream request's handler as undici sees it: passes every event on to undici's own
 * (`inner`), and tells the subclass when a connection was assigned and when the response head
 * arrived. `abortUpstream` aborts the request wherever it is: queued, being written, or streaming
 * its response.
 */
export abstract class UpstreamObserver implements UndiciHandler {
  #inner: UndiciHandler | null = null
  #abort: ((err?: Error) => void) | null = null
  #reason: Error | null = null
  /** The upstream's trailer fields as undici received them (name, value, …), once the body ended. */
  rawTrailers: Buffer[] | null = null

  /** A connection was assigned: the request is being written to the upstream. */
  protected abstract connected (): void
  /** The upstream's final response head arrived (a 1xx is not the answer yet). */
  protected abstract responseHead (): void
  /** A chunk of the response body arrived. */
  protected abstract responseData (): void
  /** The response ended (its body and trailers are in). */
  protected abstract responseEnded (): void

  /** Called by the agent with undici's handler for this request. */
  attach (inner: UndiciHandler): this {
    this.#inner = inner
    return this
  }

  /** Aborts the upstream request: at once when it runs, when a connection is assigned when it is queued. */
  abortUpstream (reason: Error): void {
    if (this.#abort !== null) this.#abort(reason)
    else if (this.#reason === null) this.#reason = reason
  }

  onConnect (abort: (err?: Error) => void, context?: unknown): void {
    const inner = this.#inner as UndiciHandler
    this.#abort = abort
    inner.onConnect(abort, context)
    if (this.#reason !== null) abort(this.#reason) // given up while queued: never written
    else this.connected()
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode >= 200) this.responseHead()
    return (this.#inner as UndiciHandler).onHeaders(statusCode, rawHeaders, resume, statusText)
  }

  onData (chunk: Buffer): boolean {
    this.responseData()
    return (this.#inner as UndiciHandler).onData(chunk)
  }

  onComplete (rawTrailers: Buffer[] | null): void {
    if (rawTrailers !== null && rawTrailers.length > 0) this.rawTrailers = rawTrailers
    this.responseEnded()
    ;(this.#inner as UndiciHandler).onComplete(rawTrailers)
  }

  onError (err: Error): void {
    (this.#inner as UndiciHandler).onError(err)
  }

  onUpgrade (statusCode: number, rawHeaders: Buffer[], socket: unknown): void {
    (this.#inner as UndiciHandler).onUpgrade?.(statusCode, rawHeaders, socket)
  }

  onBodySent (chunk: unknown): void {
    (this.#inner as UndiciHandler).onBodySent?.(chunk)
  }

  onRequestSent (): void {
    (this.#inner as UndiciHandler).onRequestSent?.()
  }

  onResponseStarted (): void {
    (this.#inner as UndiciHandler).onResponseStarted?.()
  }
}

/** An Agent whose `dispatch` puts the observer handed over by `next` in front of undici's handler. */
class ObservedAgent extends Agent {
  next: UpstreamObserver | null = null

  override dispatch (opts: Agent.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const observer = this.next
    this.next = null
    return super.dispatch(opts, observer === null ? handler : observer.attach(handler as unknown as UndiciHandler) as unknown as Dispatcher.DispatchHandler)
  }
}

/** reply-from's `undici` option: an object with undici's `request`, plus the per-request hand-over. */
export class UpstreamAgent {
  readonly #agent: ObservedAgent

  constructor (connectionsPerOrigin: number) {
    this.#agent = new ObservedAgent({ connect: { rejectUnauthorized: true }, connections: connectionsPerOrigin, pipelining: 1 })
  }

  /** The observer of the request that the next `request` call (reply-from, synchronously) dispatches. */
  next (observer: UpstreamObserver | null): void {
    this.#agent.next = observer
  }

  /**
   * Called by reply-from: undici's `request`, observed when an observer was handed over; the time
   * to the response head and between response body chunks is then the observer's to keep
   * (routes/upstream-exchange.ts), so undici's own headers and body timeouts are off for it (the
   * body timeout would also cost a timer object per request that outlives it, undici's fast
   * timers being swept once a second: docs/performance.md, "Garbage"). `opts` is the object
   * reply-from built for this call alone.
   */
  request (opts: Dispatcher.RequestOptions, callback: RequestCallback): void {
    if (this.#agent.next !== null) {
      opts.headersTimeout = 0
      opts.bodyTimeout = 0
    }
    // undici's request → dispatch runs synchronously: the agent takes the observer there, and
    // none is left over for another request whatever happens.
    try {
      this.#agent.request(opts, callback as never)
    } finally {
      this.#agent.next = null
    }
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
