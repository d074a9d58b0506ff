/**
 * The one `info` line a gateway writes once it listens: what an operator checks first (which
 * version, where, which routes, which Redis) without reading the environment of the process.
 */
import type { Config } from './config.js'
import { redisTarget } from './redis-target.js'

/** The fields of the start-up line; the Redis password is masked. */
export function startupSummary (config: Config, at: { version: string, address: string }): Record<string, unknown> {
  return {
    version: at.version,
    address: at.address,
    // prefix → upstream origin, in the order ROUTES gives them (longest prefix wins when matching).
    routes: Object.fromEntries(config.routes.map((r) => [r.prefix, r.upstream])),
    redis: redisTarget(config),
    keyPrefix: config.redisKeyPrefix,
    workers: config.workers,
    admin: config.adminToken !== null,
    // Where /metrics, /docs and /admin answer: "host:port", or null when they share the proxy port.
    management: config.management === null ? null : `${config.management.host}:${config.management.port}`
  }
}
