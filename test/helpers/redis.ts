import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, redisForScript, spawnPrivateRedis, type PrivateRedis, type ScriptRedis } from '../../scripts/private-redis.js'

export { freePort }

/** A private redis-server on a free port that a test can kill and start again on the same port. */
export class RedisServer {
  port = 0
  url = ''
  private server: PrivateRedis | null = null
  private dir = ''

  constructor (private readonly extraArgs: string[] = []) {}

  /** Starts redis-server (again, on the same port after a stop) and waits until it answers PING. */
  async start (): Promise<this> {
    if (this.port === 0) {
      this.port = await freePort()
      this.url = `redis://127.0.0.1:${this.port}`
      this.dir = await mkdtemp(join(tmpdir(), 'portcullis-redis-'))
    }
    this.server = await spawnPrivateRedis({ port: this.port, dir: this.dir, extraArgs: this.extraArgs })
    return this
  }

  /** Kills the server for real (SIGKILL) and waits until it is gone. */
  async stop (): Promise<void> {
    const server = this.server
    this.server = null
    await server?.stop('SIGKILL')
  }

  /** Freezes the server (SIGSTOP): connections stay open, commands wait unanswered, as in a stall. */
  pause (): void { this.server?.proc.kill('SIGSTOP') }

  /** Lets a paused server run again (SIGCONT): it then runs every command that waited. */
  resume (): void { this.server?.proc.kill('SIGCONT') }

  /** Stops the server and removes its folder. */
  async close (): Promise<void> {
    await this.stop()
    if (this.dir !== '') await rm(this.dir, { recursive: true, force: true })
  }

  /** A plain ioredis client for assertions; the caller quits it. */
  client (): Redis {
    return new Redis(this.port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1 })
  }
}

let shared: ScriptRedis | null = null

/**
 * The Redis a test file uses: REDIS_URL when given (CI may point at one), else a private
 * redis-server for this test file. Tests that kill Redis must use `new RedisServer()` instead.
 */
export async function sharedRedis (): Promise<{ url: string, close: () => Promise<void> }> {
  shared ??= await redisForScript({ url: process.env.REDIS_URL })
  const s = shared
  return { url: s.url, close: async () => { await s.close(); shared = null } }
}

/** Every key matching `pattern`, by SCAN (never KEYS). */
export async function scanKeys (r: Redis, pattern = '*'): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    found.push(...keys)
    cursor = next
  } while (cursor !== '0')
  return found
}

/** Every key name and every value as text: strings, hash fields and values, list, set, zset and stream members. */
export async function dumpAll (r: Redis): Promise<{ keys: string[], values: string[] }> {
  const keys = await scanKeys(r)
  const values: string[] = []
  for (const k of keys) {
    const type = await r.type(k)
    if (type === 'string') values.push(String(await r.get(k)))
    else if (type === 'hash') values.push(...Object.entries(await r.hgetall(k)).flat())
    else if (type === 'list') values.push(...await r.lrange(k, 0, -1))
    else if (type === 'set') values.push(...await r.smembers(k))
    else if (type === 'zset') values.push(...await r.zrange(k, '0', '-1', 'WITHSCORES'))
    else if (type === 'stream') values.push(JSON.stringify(await r.xrange(k, '-', '+')))
    else values.push(`<${type}>`)
  }
  return { keys, values }
}
