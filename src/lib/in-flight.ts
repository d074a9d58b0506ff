/**
 * How many requests each token has in flight on this process, and the bound on it
 * (MAX_IN_FLIGHT_PER_TOKEN): one consumer must not hold every upstream connection of a route.
 * Pure bookkeeping, no timers and no Fastify; the proxy acquires after authentication and releases
 * when the response is over, whichever way it ends (docs/forwarding.md).
 */

/** Gives a request's place back; only its first call counts, so every exit path may call it. */
export type Release = () => void

/** Counts per key (a token id) with an upper bound; `limit` 0 counts without ever refusing. */
export class InFlightLimiter {
  readonly limit: number
  readonly #held = new Map<string, number>()
  #total = 0

  constructor (limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError('InFlightLimiter limit must be a whole number >= 0')
    this.limit = limit
  }

  /**
   * Admits one request of `key`: true, or false when `key` already holds `limit` requests. The
   * caller gives the place back with `release(key)` exactly once (the hot path: no closure).
   */
  tryAcquire (key: string): boolean {
    const held = this.#held.get(key) ?? 0
    if (this.limit > 0 && held >= this.limit) return false
    this.#held.set(key, held + 1)
    this.#total++
    return true
  }

  /** Gives back one place `tryAcquire(key)` took; the caller makes sure it is called once per place. */
  release (key: string): void {
    const held = this.#held.get(key)
    if (held === undefined) return
    this.#total--
    // Keys with nothing in flight are dropped: the map is as large as the set of busy tokens.
    if (held <= 1) this.#held.delete(key)
    else this.#held.set(key, held - 1)
  }

  /** Admits one request of `key`: its release (only its first call counts), or null when `key` already holds `limit` requests. */
  acquire (key: string): Release | null {
    if (!this.tryAcquire(key)) return null
    let released = false
    return () => {
      if (released) return
      released = true
      this.release(key)
    }
  }

  /** Requests `key` has in flight now. */
  held (key: string): number {
    return this.#held.get(key) ?? 0
  }

  /** Requests in flight over every key. */
  get total (): number {
    return this.#total
  }

  /** Keys with at least one request in flight. */
  get keys (): number {
    return this.#held.size
  }
}
