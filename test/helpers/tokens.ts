import { Redis } from 'ioredis'
import { TokenStore } from '../../src/token-store.js'

/** A token made for a test: its key (for `Authorization: Bearer`) and its public id. */
export interface TestToken { key: string, id: string, bearer: string }

/**
 * Stores a token in the Redis at `redisUrl`, by default one that may call every path with a
 * limit no test reaches, so proxy tests exercise forwarding and not the limiter.
 */
export async function createTestToken (redisUrl: string, input: Record<string, unknown> = {}, prefix = 'portcullis:'): Promise<TestToken> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  try {
    const store = new TokenStore(redis, prefix)
    const t = await store.create({ rate_limit: 1_000_000, allowed_routes: ['/*'], ...input })
    return { key: t.api_key, id: t.id, bearer: `Bearer ${t.api_key}` }
  } finally {
    redis.disconnect()
  }
}
