/**
 * Start-up shared by src/server.ts and the scripts (demo, bench, openapi): a Redis client made
 * and ready, then the app built on it. Listening stays with the caller (host, port and what a
 * listen failure means differ).
 */
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from './lib/config.js'
import { createRedisClient, waitUntilReady, type RedisClient } from './redis-client.js'
import { waitForRedisAtStart } from './redis-start.js'
import { redisTarget } from './lib/redis-target.js'
import { buildApp, type BuildOptions } from './app.js'

/** How to wait for Redis: forever, warning on `log` (src/redis-start.ts), or at most `timeoutMs` (then an error). */
export type RedisWait = { log: Logger } | { timeoutMs: number }

/** A Redis client for `config`, resolved once it is ready; disconnected again when the wait fails. */
export async function readyRedis (config: Config, wait: RedisWait): Promise<RedisClient> {
  const client = createRedisClient(config)
  client.on('error', () => {}) // src/redis-start.ts and then the redis plugin log what matters
  try {
    if ('log' in wait) await waitForRedisAtStart(client, redisTarget(config), wait.log)
    else await waitUntilReady(client, wait.timeoutMs)
  } catch (err) {
    client.disconnect()
    throw err
  }
  return client
}

/** Redis ready → buildApp: the app (not yet listening) and the client it uses. */
export async function startGateway (config: Config, opts: Omit<BuildOptions, 'redis'> & { wait: RedisWait }): Promise<{ app: FastifyInstance, redis: RedisClient }> {
  const { wait, ...build } = opts
  const redis = await readyRedis(config, wait)
  const app = await buildApp(config, { ...build, redis })
  return { app, redis }
}
