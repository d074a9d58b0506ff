import fp from 'fastify-plugin'
import fastifyRedis from '@fastify/redis'
import { createRedisClient, type RedisClient } from '../src/redis-client.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Shared ioredis client (single node or Cluster), fail-fast settings; see src/redis-client.ts. */
    redisClient: RedisClient
  }
}

export interface RedisPluginOptions {
  /** A client made (and made ready) by the caller, e.g. server.ts waits for Redis before building the app. */
  client?: RedisClient
}

/**
 * One Redis client for the whole app, through @fastify/redis (which waits for `ready` and quits
 * the client on close). Connection state changes are logged once each, not per failed retry.
 */
export default fp<RedisPluginOptions>(async function redisPlugin (app, opts) {
  const client = opts.client ?? createRedisClient(app.config)
  let up = client.status === 'ready'
  client.on('ready', () => {
    if (!up) app.log.info('redis connection ready')
    up = true
  })
  client.on('error', (err: Error) => {
    if (up) app.log.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'redis connection error')
    up = false
  })
  let closing = false
  client.on('close', () => {
    if (up && !closing) app.log.warn('redis connection lost; reconnecting')
    up = false
  })
  app.addHook('preClose', async () => { closing = true })
  // @fastify/redis types the client as a single-node Redis; a Cluster answers the same commands we use.
  await app.register(fastifyRedis, { client: client as never, closeClient: true })
  app.decorate<RedisClient>('redisClient', client)
}, { name: 'portcullis-redis', fastify: '5.x', dependencies: ['portcullis-config'] })
