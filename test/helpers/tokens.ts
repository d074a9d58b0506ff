import t from 'tap'
import { Cluster, Redis } from 'ioredis'
import { TokenStore } from '../../src/tokens/store.js'
import { sharedRedis } from './redis.js'

/** A token made for a test: its key (for `Authorization: Bearer`) and its public id. */
export interface TestToken { key: string, id: string, bearer: string }

const DEFAULTS = { rate_limit: 1_000_000, allowed_routes: ['/*'] }

/** Stores a token through a client the caller owns (single node or Cluster); same defaults as createTestToken. */
export async function createTestTokenWith (client: Redis | Cluster, input: Record<string, unknown> = {}, prefix = 'portcullis:'): Promise<TestToken> {
  const t = await new TokenStore(client, prefix).create({ ...DEFAULTS, ...input })
  return { key: t.api_key, id: t.id, bearer: `Bearer ${t.api_key}` }
}

/**
 * Stores a token in the Redis at `redisUrl`, by default one that may call every path with a
 * limit no test reaches, so proxy tests exercise forwarding and not the limiter.
 */
export async function createTestToken (redisUrl: string, input: Record<string, unknown> = {}, prefix = 'portcullis:'): Promise<TestToken> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  try {
    return await createTestTokenWith(redis, input, prefix)
  } finally {
    redis.disconnect()
  }
}

/**
 * For a test file: the shared Redis with one token in it (createTestToken's defaults), and
 * `onEnd` for what the file starts. When the file's tests are over, those close, the last
 * started first, and then the Redis.
 */
export async function redisWithToken (): Promise<{ redis: { url: string }, token: TestToken, onEnd: (close: () => Promise<void>) => void }> {
  const redis = await sharedRedis()
  const token = await createTestToken(redis.url)
  const closers: Array<() => Promise<void>> = []
  t.teardown(async () => {
    for (const close of closers.reverse()) await close()
    await redis.close()
  })
  return { redis, token, onEnd: (close) => { closers.push(close) } }
}

/** The same on a Redis Cluster (`nodes` as in REDIS_CLUSTER_NODES): the record and the index land in different slots. */
export async function createClusterTestToken (nodes: string, input: Record<string, unknown> = {}, prefix = 'portcullis:'): Promise<TestToken> {
  const startup = nodes.split(',').map((n) => {
    const i = n.lastIndexOf(':')
    return { host: n.slice(0, i), port: Number(n.slice(i + 1)) }
  })
  const cluster = new Cluster(startup, { redisOptions: { maxRetriesPerRequest: 1 } })
  try {
    return await createTestTokenWith(cluster, input, prefix)
  } finally {
    cluster.disconnect()
  }
}
