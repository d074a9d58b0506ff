/**
 * How many requests each token has in flight on this process, and the bound on it
 * (MAX_IN_FLIGHT_PER_TOKEN): one consumer must not hold every upstream connection of a route.
 * Pure bookkeeping, no timers and no Fastify; the proxy acquires after authentication and releases
 * when the response is over, whichever way it ends (docs/forwarding.md).
 */

/** Gives a request's place back; only its first call counts, so every exit path may call it. */
export type Release = () => void

/**
 * Keys with nothing in flight that stay in the map before a sweep drops them. Keeping a key at 0
 * instead of deleting it on every last release spares the map a deletion per request: V8 gives a
 * long-lived Map a new table on deletions, and those tables are what fills the old generation
 * under load (docs/performance.md, "Garbage").
 */
export const IDLE_KEYS_KEPT = 1024

/** Counts per key (a token id) with an upper bound; `limit` 0 counts without ever refusing. */
export class InFlightLimiter {
  readonly limit: number
  readonly #held = new Map<string, number>()
  #total = 0
  /** Keys whose count is above 0. */
  #busy = 0

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
    if (held === 0) this.#busy++
    return true
  }

  /** Gives back one place `tryAcquire(key)` took; the caller makes sure it is called once per place. */
  release (key: string): void {
    const held = this.#held.get(key)
    if (held === undefined || held === 0) return
    this.#total--
    this.#held.set(key, held - 1)
    if (held > 1) return
    this.#busy--
    // Idle keys stay (no deletion per request) until there are more than IDLE_KEYS_KEPT of them:
    // then every idle key goes at once, so the map stays within busy keys + IDLE_KEYS_KEPT + 1.
    if (this.#held.size - this.#busy > IDLE_KEYS_KEPT) {
      for (const [k, n] of this.#held) if (n === 0) this.#held.delete(k)
    }
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
    return this.#busy
  }

  /** Keys the limiter holds, busy or idle: at most `keys` + IDLE_KEYS_KEPT + 1. */
  get tracked (): number {
    return this.#held.size
  }
}
