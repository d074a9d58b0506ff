import { Cluster, Redis } from 'ioredis'
import { TokenStore } from '../../src/tokens/store.js'

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
