/**
 * What Redis' clock reads while the gateway's reads a given moment, learnt from replies that carry
 * Redis time: a conservative estimate, so a deadline sent in Redis time never lies after the
 * gateway moment it stands for. Pure (the caller passes both clocks' readings).
 */

/** Samples older than two epochs are forgotten, so drift and clock steps are re-learnt. */
const EPOCH_US = 30_000_000

interface Bound { epoch: number, current: number, previous: number }

/**
 * A reply that Redis stamped with `redisUs` and the gateway received at `receivedUs` proves
 * `offset = redis − gateway ≥ redisUs − receivedUs` (Redis read its clock before the reply came
 * back). The largest such lower bound is the tightest that is still safe: an estimate below the
 * true offset puts a deadline earlier in Redis time, never later. The best bound of the current
 * and the previous epoch is kept, so a Redis clock that drifts back or steps back is followed
 * within two epochs; one that moves forward is followed at once.
 */
export class RedisClock {
  private readonly bounds = new Map<string, Bound>()

  /** Records a reply of the Redis `node` (any name; one per server clock). */
  observe (node: string, redisUs: number, receivedUs: number): void {
    const bound = redisUs - receivedUs
    const epoch = Math.floor(receivedUs / EPOCH_US)
    const b = this.bounds.get(node)
    if (b === undefined) {
      this.bounds.set(node, { epoch, current: bound, previous: -Infinity })
      return
    }
    if (epoch !== b.epoch) {
      b.previous = epoch === b.epoch + 1 ? b.current : -Infinity
      b.current = -Infinity
      b.epoch = epoch
    }
    if (bound > b.current) b.current = bound
  }

  /** Redis time (µs) no later than the gateway moment `gatewayUs`, or null while `node` is unknown. */
  toRedis (node: string, gatewayUs: number): number | null {
    const b = this.bounds.get(node)
    if (b === undefined) return null
    const offset = Math.max(b.current, b.previous)
    return Number.isFinite(offset) ? Math.floor(gatewayUs + offset) : null
  }

  /** Forgets a node (its connection was re-established: it may be another server now). */
  forget (node?: string): void {
    if (node === undefined) this.bounds.clear()
    else this.bounds.delete(node)
  }
}
