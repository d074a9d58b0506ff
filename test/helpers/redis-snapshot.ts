import { Redis } from 'ioredis'

/**
 * Every key in the Redis at `url` with its type and value, as one comparable string: equal
 * snapshots before and after a request mean it wrote nothing (no TAT, no token change).
 */
export async function redisSnapshot (url: string): Promise<string> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 })
  try {
    const out: string[] = []
    for (const key of (await r.keys('*')).sort()) {
      const type = await r.type(key)
      const value = type === 'hash' ? await r.hgetall(key) : type === 'string' ? await r.get(key) : type === 'set' ? (await r.smembers(key)).sort() : await r.dump(key)
      out.push(`${key} ${type} ${JSON.stringify(value)}`)
    }
    return out.join('\n')
  } finally {
    r.disconnect()
  }
}
