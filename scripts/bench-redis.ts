/**
 * Redis for `npm run bench`: the one at REDIS_URL when given, else a private redis-server from
 * PATH on a free loopback port (no persistence), killed again by `close`.
 */
import type { Redis } from 'ioredis'
import { redisForScript } from './private-redis.js'

export interface BenchRedis {
  url: string
  /** True when this process started redis-server (and so owns it). */
  private: boolean
  close: () => Promise<void>
  /** Synchronous last resort (the watchdog): SIGKILL a private redis-server, leave its folder. */
  killNow: () => void
}

/** REDIS_URL when set, else a private redis-server that answers PING before this resolves. */
export async function startRedis (env: NodeJS.ProcessEnv): Promise<BenchRedis> {
  const r = await redisForScript({ url: env.REDIS_URL })
  return { url: r.url, private: r.pid !== null, close: r.close, killNow: r.killNow }
}

/** Calls per command from `INFO commandstats` (command name lower-cased, e.g. `evalsha`). */
export async function commandCalls (redis: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    out.set((m[1] as string).toLowerCase(), Number(m[2]))
  }
  return out
}

/** after − before, per command, leaving out commands whose count did not change. */
export function callsBetween (before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, n] of after) {
    const d = n - (before.get(name) ?? 0)
    if (d !== 0) out[name] = d
  }
  return out
}

/**
 * Commands clients sent besides the script calls. commandstats also counts the commands a script
 * runs inside Redis; the gate script runs each of its commands at most once per check, and one
 * call carries up to one check per request, so only counts beyond `checks` (and every command the
 * script never runs) came over the wire.
 */
export function commandsOutsideScript (delta: Record<string, number>, checks: number, script: string): Record<string, number> {
  const inScript = new Set([...script.matchAll(/redis\.call\(\s*['"](\w+)['"]/g)].map((m) => (m[1] as string).toLowerCase()))
  const out: Record<string, number> = {}
  for (const [name, n] of Object.entries(delta)) {
    if (name === 'evalsha' || name === 'eval') continue
    const extra = inScript.has(name) ? n - checks : n
    if (extra > 0) out[name] = extra
  }
  return out
}
