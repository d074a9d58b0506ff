import fp from 'fastify-plugin'
import fastifyRedis from '@fastify/redis'
import { createRedisClient, type RedisClient } from '../src/redis-client.js'
import { redisTarget } from '../src/lib/redis-target.js'

export interface RedisPluginOptions {
  /** A client made (and made ready) by the caller, e.g. server.ts waits for Redis before building the app. */
  client?: RedisClient
}

/**
 * One Redis client for the whole app, through @fastify/redis (which waits for `ready` and quits
 * the client on close). Connection state changes are logged once each (lost: warn, restored:
 * info, with how long it was down), never per failed reconnect attempt or per request.
 */
export default fp<RedisPluginOptions>(async function redisPlugin (app, opts) {
  const client = opts.client ?? createRedisClient(app.config)
  const redis = redisTarget(app.config) // password masked
  let up = client.status === 'ready'
  let lostAt = 0
  let closing = false
  const lost = (err: { message: string, code?: string }): void => {
    if (!up || closing) return
    up = false
    lostAt = Date.now()
    app.log.warn({ redis, err }, 'redis connection lost; reconnecting')
  }
  client.on('ready', () => {
    if (up) return
    up = true
    if (lostAt === 0) app.log.info({ redis }, 'redis connection ready')
    else app.log.info({ redis, downMs: Date.now() - lostAt }, 'redis connection restored')
  })
  // The first of 'error' (ECONNRESET …) and 'close' says it; the reconnect attempts that follow
  // (ECONNREFUSED every few hundred ms) find `up` false and stay silent.
  client.on('error', (err: Error) => { lost({ message: err.message, code: (err as NodeJS.ErrnoException).code }) })
  client.on('close', () => { lost({ message: 'connection closed' }) })
  client.on('end', () => {
    if (!closing) app.log.error({ redis }, 'redis connection ended: no more reconnect attempts')
  })
  app.addHook('preClose', async () => { closing = true })
  // @fastify/redis types the client as a single-node Redis; a Cluster answers the same commands we use.
  // Its decoration `app.redis` is the app's one client (waited for until ready, quit on close).
  await app.register(fastifyRedis, { client: client as never, closeClient: true })
}, { name: 'portcullis-redis', fastify: '5.x', dependencies: ['portcullis-config'] })
