/**
 * The one place ioredis clients are made, for the gateway and the CLI alike. Settings fail fast:
 * while Redis is away a command errors at once (no offline queue) or after the command timeout,
 * so requests get 503 quickly instead of piling up.
 */
import { Redis, Cluster, type RedisOptions, type ClusterOptions } from 'ioredis'
import type { Config } from './lib/config.js'
import { GCRA_COMMAND } from './lib/gcra.js'

/** A single-node client or a Cluster client; the gateway uses only commands both support. */
export type RedisClient = Redis | Cluster

export interface ClientOptions {
  /** Overrides REDIS_COMMAND_TIMEOUT_MS (the CLI allows slower commands). */
  commandTimeoutMs?: number
  /** Shown in `CLIENT LIST`. */
  connectionName?: string
}

/** Reconnect quickly at first, then every second, forever: the gateway must recover by itself. */
const retryStrategy = (times: number): number => Math.min(50 * times, 1000)

/** Creates the client for REDIS_CLUSTER_NODES when set, else for REDIS_URL (user, password, db, TLS honoured). */
export function createRedisClient (config: Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisCommandTimeoutMs'>, opts: ClientOptions = {}): RedisClient {
  const base: RedisOptions = {
    enableAutoPipelining: true,
    // plugins/gate.ts coalesces its script calls itself, with a key count per call that
    // auto-pipelining would misread as the first key (and on a Cluster group under a wrong slot).
    autoPipeliningIgnoredCommands: [GCRA_COMMAND],
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? config.redisCommandTimeoutMs,
    connectTimeout: 2000,
    connectionName: opts.connectionName ?? 'portcullis',
    retryStrategy
  }
  if (config.redisClusterNodes !== null) {
    const url = new URL(config.redisUrl)
    const redisOptions: RedisOptions = { ...base }
    // Credentials and TLS of REDIS_URL apply to every cluster node.
    if (url.username !== '') redisOptions.username = decodeURIComponent(url.username)
    if (url.password !== '') redisOptions.password = decodeURIComponent(url.password)
    if (url.protocol === 'rediss:') redisOptions.tls = { servername: url.hostname }
    const clusterOptions: ClusterOptions = {
      enableAutoPipelining: true,
      autoPipeliningIgnoredCommands: [GCRA_COMMAND],
      enableOfflineQueue: false,
      // Like maxRetriesPerRequest: 0 above: a command that meets a closed node connection or
      // CLUSTERDOWN fails at once. ioredis' defaults retry it every 100 ms up to maxRedirections
      // (16) times, so every request waited ~1.7 s for its 503 while a master was down.
      // MOVED/ASK are still followed, and the slot map still refreshes on MOVED.
      retryDelayOnFailover: 0,
      retryDelayOnClusterDown: 0,
      clusterRetryStrategy: retryStrategy,
      slotsRefreshTimeout: 2000,
      redisOptions
    }
    return new Cluster(config.redisClusterNodes, clusterOptions)
  }
  return new Redis(config.redisUrl, base)
}

/** Resolves once the client is ready; rejects after `timeoutMs` with the last connection error. */
export async function waitUntilReady (client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | null = null
    const onError = (err: Error): void => { lastError = err }
    const cleanup = (): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
      client.off('error', onError)
    }
    const onReady = (): void => { cleanup(); resolve() }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`Redis not ready after ${timeoutMs} ms${lastError === null ? '' : `: ${lastError.message}`}`))
    }, timeoutMs)
    client.on('ready', onReady)
    client.on('error', onError)
  })
}

/**
 * Whether this instance can reach its store: the single node answers PING; for a Cluster, the
 * client is ready and some master says `cluster_state:ok` (a plain `ping()` on a Cluster asks one
 * random node, so readiness would flap). One dead master does not take every gateway out of
 * service while the cluster still serves: its slots answer 503 per request, the others work, and
 * failover brings it back; once the cluster declares itself failed, readiness says so.
 */
export async function pingStore (client: RedisClient): Promise<void> {
  if (!(client instanceof Cluster)) {
    const pong = await client.ping()
    if (pong !== 'PONG') throw new Error(`PING answered ${pong}`)
    return
  }
  if (client.status !== 'ready') throw new Error(`cluster client is ${client.status}`)
  const masters = client.nodes('master')
  let info: string
  try {
    info = await Promise.any(masters.map(async (node) => await node.cluster('INFO')))
  } catch {
    throw new Error(`none of ${masters.length} Redis Cluster masters answers`)
  }
  const state = /^cluster_state:(\w+)/m.exec(info)?.[1] ?? 'unknown'
  if (state !== 'ok') throw new Error(`cluster_state is ${state}`)
}
