/**
 * Running the gateway: configuration, WORKERS (node:cluster), listening once Redis is ready,
 * and graceful shutdown on SIGTERM/SIGINT within SHUTDOWN_GRACE_MS.
 */
import cluster from 'node:cluster'
import { pino, type Logger } from 'pino'
import type { FastifyInstance } from 'fastify'
import { loadConfig, ConfigError, type Config } from './lib/config.js'
import { createRedisClient, waitUntilReady, type RedisClient } from './redis-client.js'
import { buildApp } from './app.js'
import { startClusterMetrics } from './cluster-metrics.js'

/** Reads the configuration (exit 1 with one line when invalid) and runs the gateway. */
export async function serve (env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config: Config
  try {
    config = loadConfig(env, { dotenv: true })
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`portcullis: invalid configuration: ${err.message}\n`)
    process.exit(1)
  }
  if (config.workers > 1 && cluster.isPrimary) {
    runPrimary(config)
    return
  }
  await runWorker(config)
}

/** Waits for Redis, however long it takes, logging every few seconds: a worker never listens without it. */
async function readyRedis (config: Config, log: Logger): Promise<RedisClient> {
  const client = createRedisClient(config)
  client.on('error', () => {}) // the redis plugin logs state changes once the app exists
  for (let attempt = 1; ; attempt++) {
    try {
      await waitUntilReady(client, 5000)
      return client
    } catch (err) {
      log.warn({ attempt, err: { message: (err as Error).message } }, 'waiting for Redis before listening')
    }
  }
}

/** One gateway process: Redis ready → app built → listen → drain on a signal. */
async function runWorker (config: Config): Promise<FastifyInstance> {
  const log = pino({ level: config.logLevel })
  const redis = await readyRedis(config, log)
  const app = await buildApp(config, { redis })
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    app.log.info({ signal, graceMs: config.shutdownGraceMs }, 'draining: readiness is now 503')
    const deadline = setTimeout(() => {
      app.log.error({ graceMs: config.shutdownGraceMs }, 'shutdown grace expired with requests in flight; exiting')
      process.exit(1)
    }, config.shutdownGraceMs)
    deadline.unref()
    app.lifecycle.beginDraining()
    app.close().then(() => {
      clearTimeout(deadline)
      app.log.info('shut down cleanly')
      process.exit(0)
    }, (err: unknown) => {
      app.log.error({ err }, 'error while closing')
      process.exit(1)
    })
  }
  process.once('SIGTERM', () => { stop('SIGTERM') })
  process.once('SIGINT', () => { stop('SIGINT') })
  await app.listen({ port: config.port, host: config.host })
  await app.management.listen() // MANAGEMENT_PORT: /metrics, /docs, /admin move there (plugins/management.ts)
  return app
}

/** The primary of WORKERS>1: forks, restarts crashed workers, forwards the shutdown signal. */
function runPrimary (config: Config): void {
  const log = pino({ level: config.logLevel })
  let stopping = false
  let restarts = 0
  let uncleanWorkers = 0
  startClusterMetrics()
  const fork = (): void => { cluster.fork() }
  for (let i = 0; i < config.workers; i++) fork()
  log.info({ workers: config.workers }, 'primary started workers')
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      // A worker that ran out of grace (exit 1) makes the whole shutdown unclean, as with WORKERS=1.
      if (code !== 0) uncleanWorkers++
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(uncleanWorkers === 0 ? 0 : 1)
      return
    }
    restarts++
    const delay = Math.min(100 * 2 ** Math.min(restarts, 6), 5000)
    log.error({ pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker died; restarting')
    setTimeout(fork, delay).unref()
  })
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'primary forwarding shutdown to workers')
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM')
    setTimeout(() => {
      log.error('workers did not exit within the grace period; killing them')
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL')
      process.exit(1)
    }, config.shutdownGraceMs + 1000).unref()
  }
  process.once('SIGTERM', () => { stop('SIGTERM') })
  process.once('SIGINT', () => { stop('SIGINT') })
}
