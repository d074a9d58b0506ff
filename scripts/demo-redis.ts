/**
 * Redis for `npm run demo` (SPEC §1): the one at REDIS_URL when it answers PING within a second,
 * else a private redis-server from PATH on a free loopback port, without persistence, which
 * `close` stops and whose folder it removes.
 */
import { pingProblem, spawnPrivateRedis } from './private-redis.js'

export interface DemoRedis {
  url: string
  /** The private redis-server's pid, or null when REDIS_URL answered. */
  pid: number | null
  /** Why REDIS_URL was not used (null when it was). */
  fallbackReason: string | null
  /** Stops a private redis-server (SIGTERM, then SIGKILL after 3 s) and removes its folder. */
  close: () => Promise<void>
  /** Synchronous last resort on process exit: SIGKILL a private redis-server. */
  killNow: () => void
}

/** Uses REDIS_URL (default redis://127.0.0.1:6379) when it answers, else starts a private redis-server. */
export async function demoRedis (env: NodeJS.ProcessEnv): Promise<DemoRedis> {
  const given = env.REDIS_URL === undefined || env.REDIS_URL === '' ? 'redis://127.0.0.1:6379' : env.REDIS_URL
  const problem = await pingProblem(given, 1000)
  if (problem === null) return { url: given, pid: null, fallbackReason: null, close: async () => {}, killNow: () => {} }

  // Its own process group: the terminal's Ctrl-C reaches only the demo, which stops the
  // gateway before Redis instead of both dying at once.
  const server = await spawnPrivateRedis({ detached: true })
  return {
    url: server.url,
    pid: server.proc.pid ?? null,
    fallbackReason: `${given}: ${problem}`,
    close: server.close,
    killNow: server.killNow
  }
}
