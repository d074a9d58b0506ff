/**
 * Redis for `npm run demo`: a private redis-server from PATH on a free loopback port, without
 * persistence, unless one is chosen (`--redis-url` or REDIS_URL). The demo never probes a
 * default address: a Redis that happens to answer on 127.0.0.1:6379 belongs to another program.
 * On exit every key under the demo's prefix is removed (a chosen Redis keeps nothing of the demo).
 */
import { Redis } from 'ioredis'
import { pingProblem, redisForScript } from './private-redis.js'
import { maskRedisUrl } from '../src/lib/redis-target.js'

export interface DemoRedis {
  url: string
  /** The private redis-server's pid, or null when a Redis was chosen. */
  pid: number | null
  /** Where the chosen URL came from (`--redis-url` or `REDIS_URL`), null for a private one. */
  chosenBy: string | null
  /** Stops a private redis-server (SIGTERM, then SIGKILL after 3 s) and removes its folder. */
  close: () => Promise<void>
  /** Synchronous last resort on process exit: SIGKILL a private redis-server. */
  killNow: () => void
}

/** The chosen Redis when it answers (else an Error saying so); a private redis-server when none is chosen. */
export async function demoRedis (chosen: { url: string, by: string } | null): Promise<DemoRedis> {
  if (chosen !== null) {
    const problem = await pingProblem(chosen.url, 2000)
    if (problem !== null) {
      throw new Error(`no Redis answers at ${maskRedisUrl(chosen.url)} (${chosen.by}): ${problem}; leave it unset and the demo starts a private redis-server`)
    }
  }
  // A private one in its own process group: the terminal's Ctrl-C reaches only the demo, which
  // stops the gateway before Redis instead of both dying at once.
  const redis = await redisForScript({ url: chosen?.url, detached: true })
  return { ...redis, chosenBy: chosen?.by ?? null }
}

/** Glob characters of SCAN MATCH escaped, so the prefix matches only itself. */
const globLiteral = (s: string): string => s.replace(/[*?[\]\\]/g, (c) => `\\${c}`)

/**
 * Removes every key under `prefix` (SCAN + UNLINK, never KEYS) and returns how many. Single node
 * only: the demo runs on one Redis (it ignores REDIS_CLUSTER_NODES).
 */
export async function purgePrefix (url: string, prefix: string): Promise<number> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: () => null })
  r.on('error', () => {}) // the caller reports the rejection
  try {
    let removed = 0
    let cursor = '0'
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${globLiteral(prefix)}*`, 'COUNT', 1000)
      if (keys.length > 0) removed += await r.unlink(...keys)
      cursor = next
    } while (cursor !== '0')
    return removed
  } finally {
    r.disconnect()
  }
}
