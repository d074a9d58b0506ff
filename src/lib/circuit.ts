/**
 * A per-route upstream circuit breaker as a pure state machine: no timers, no Fastify, the clock
 * injected so that tests step time instead of sleeping.
 *
 *   closed ── `threshold` consecutive failures ──▶ open ── `cooldownMs` over, next request ──▶ half-open
 *   half-open ── probe answered ──▶ closed        half-open ── probe failed ──▶ open (another cooldown)
 *
 * A failure is an upstream that could not be talked to (refused, reset, timeout, DNS, TLS, not
 * HTTP), including a response whose body breaks off; a complete response, a 500 included, is a
 * success. Each admitted request holds a permit and reports its outcome through it once. A permit
 * from before the last state change counts for nothing: late outcomes of requests admitted while
 * closed neither re-open an open circuit nor decide a half-open probe, only the probe does.
 *
 * The outcome is known only when the body has ended, which for a stream (SSE) may be never: so a
 * half-open probe is decided by its response head (`answered`), and the probe's permit then goes
 * on to report its body's outcome to the closed circuit like any other request.
 */

/** The three states; also the `to` label of the transitions metric. */
export type CircuitState = 'closed' | 'open' | 'half-open'

export interface CircuitOptions {
  /** Consecutive failures that open the circuit; 0 turns the breaker off (it never opens). */
  threshold: number
  /** How long an open circuit refuses every request before it admits one probe. */
  cooldownMs: number
  /** Milliseconds on a monotonic clock; default `performance.now()`. */
  now?: () => number
  /** Called on every state change, after it happened. */
  onTransition?: (to: CircuitState, from: CircuitState) => void
}

/** How an admitted request reports back; only the first outcome counts, later ones are ignored. */
export interface CircuitPermit {
  /** The response head arrived: decides a half-open probe (closed), no outcome otherwise. */
  answered: () => void
  /** The upstream's response is complete, whatever its status. */
  success: () => void
  /** The upstream refused, reset, timed out, or answered something that is not HTTP. */
  failure: () => void
  /** Neither (the client left first): frees the half-open probe slot, changes nothing else. */
  release: () => void
}

type Outcome = 'success' | 'failure' | 'release'

const INERT: CircuitPermit = { answered () {}, success () {}, failure () {}, release () {} }

/** One route's breaker: `acquire()` before forwarding, then settle the permit with the outcome. */
export class CircuitBreaker {
  readonly threshold: number
  readonly cooldownMs: number
  readonly #now: () => number
  readonly #onTransition: CircuitOptions['onTransition']
  #state: CircuitState = 'closed'
  #failures = 0
  #openUntil = 0
  #probing = false
  /** Bumped on every state change: a permit of an older epoch is stale. */
  #epoch = 0

  constructor (opts: CircuitOptions) {
    if (!Number.isInteger(opts.threshold) || opts.threshold < 0) throw new RangeError('threshold must be an integer ≥ 0')
    if (!Number.isInteger(opts.cooldownMs) || opts.cooldownMs < 1) throw new RangeError('cooldownMs must be an integer ≥ 1')
    this.threshold = opts.threshold
    this.cooldownMs = opts.cooldownMs
    this.#now = opts.now ?? (() => performance.now())
    this.#onTransition = opts.onTransition
  }

  /** The current state; an open circuit whose cooldown is over reads (and becomes) half-open. */
  get state (): CircuitState {
    this.#advance()
    return this.#state
  }

  /** Failures counted since the last success or state change. */
  get consecutiveFailures (): number { return this.#failures }

  /** Admits one request: a permit to report its outcome with, or null when the circuit refuses it. */
  acquire (): CircuitPermit | null {
    if (this.threshold === 0) return INERT
    this.#advance()
    if (this.#state === 'open') return null
    if (this.#state === 'half-open') {
      if (this.#probing) return null
      this.#probing = true
    }
    return this.#permit()
  }

  /** Whole seconds until a request may be admitted again (≥ 1), for `Retry-After`. */
  retryAfterSeconds (): number {
    const remaining = this.#state === 'open' ? this.#openUntil - this.#now() : 0
    return Math.max(1, Math.ceil(remaining / 1000))
  }

  #permit (): CircuitPermit {
    let epoch = this.#epoch
    let settled = false
    const settle = (outcome: Outcome): void => {
      if (settled) return
      settled = true
      if (epoch === this.#epoch) this.#record(outcome)
    }
    const answered = (): void => {
      if (settled || epoch !== this.#epoch || this.#state !== 'half-open') return
      this.#moveTo('closed')
      epoch = this.#epoch // the probe's body outcome is counted by the circuit it closed
    }
    return { answered, success: () => settle('success'), failure: () => settle('failure'), release: () => settle('release') }
  }

  // Only reached by a permit of the current epoch, so in half-open it is the probe's outcome.
  #record (outcome: Outcome): void {
    if (this.#state === 'half-open') {
      this.#probing = false
      if (outcome === 'success') this.#moveTo('closed')
      else if (outcome === 'failure') this.#open()
      return
    }
    if (outcome === 'success') this.#failures = 0
    else if (outcome === 'failure' && ++this.#failures >= this.threshold) this.#open()
  }

  #advance (): void {
    if (this.#state === 'open' && this.#now() >= this.#openUntil) this.#moveTo('half-open')
  }

  #open (): void {
    this.#openUntil = this.#now() + this.cooldownMs
    this.#moveTo('open')
  }

  #moveTo (to: CircuitState): void {
    const from = this.#state
    this.#state = to
    this.#failures = 0
    this.#probing = false
    this.#epoch++
    this.#onTransition?.(to, from)
  }
}
