/**
 * Running the gateway: configuration, WORKERS (node:cluster), listening once Redis is ready,
 * and graceful shutdown on SIGTERM/SIGINT within SHUTDOWN_GRACE_MS.
 */
import cluster from 'node:cluster'
import closeWithGrace from 'close-with-grace'
import { pino, type Logger } from 'pino'
import type { FastifyInstance } from 'fastify'
import { loadConfig, ConfigError, type Config } from './lib/config.js'
import { startupSummary } from './lib/startup-summary.js'
import { LOG_TIMESTAMP, logStream } from './log-stream.js'
import { packageVersion } from './version.js'
import { startGateway } from './gateway-start.js'
import { readTlsMaterial, type TlsMaterial } from './tls.js'
import { startClusterMetrics } from './cluster-metrics.js'

/** Reads the configuration (exit 1 with one line when invalid) and runs the gateway. */
export async function serve (env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config: Config
  let tls: TlsMaterial | undefined
  try {
    config = loadConfig(env, { dotenv: true })
    // Checked in the primary too: a bad file is one line, not a crash loop of workers.
    if (config.tls !== null) tls = readTlsMaterial(config.tls)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`portcullis: invalid configuration: ${err.message}\n`)
    process.exit(1)
  }
  if (config.workers > 1 && cluster.isPrimary) {
    runPrimary(config)
    return
  }
  await runWorker(config, tls)
}

/** The server's own logger (before the app exists, and the primary's): same format and times as the app's. */
function serverLogger (config: Config): Logger {
  // pino's err serializer turns any object into {type: "Object", stack: ""}; ours are already plain.
  const serializers = { err: (e: unknown) => e instanceof Error ? pino.stdSerializers.err(e) : e }
  return pino({ level: config.logLevel, timestamp: LOG_TIMESTAMP, serializers }, logStream(config.logFormat) ?? pino.destination(1))
}

/** A listen failure an operator can fix by configuration: one line naming PORT or HOST, exit 1. */
function listenProblem (err: unknown, config: Config): string | null {
  const e = err as NodeJS.ErrnoException & { port?: number }
  const code = e.code
  // The management listener's errors carry its port (plugins/management.ts listens after PORT).
  const m = config.management !== null && e.port === config.management.port && e.port !== config.port ? config.management : null
  const [port, host, where] = m === null ? ['PORT', 'HOST', `${config.host}:${config.port}`] : ['MANAGEMENT_PORT', 'MANAGEMENT_HOST', `${m.host}:${m.port}`]
  if (code === 'EADDRINUSE') return `cannot listen on ${where}: the port is in use (${port})`
  if (code === 'EACCES') return `cannot listen on ${where}: permission denied (${port} below 1024 needs privileges)`
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot listen on ${where}: no such local address (${host})`
  return null
}

/** Every event close-with-grace listens to by default except SIGTERM and SIGINT: those keep Node's default behaviour. */
const CWG_SKIP = ['SIGHUP', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGUSR2',
  'uncaughtException', 'unhandledRejection', 'beforeExit'] as const

/** One gateway process: Redis ready → app built → listen → drain on a signal. */
async function runWorker (config: Config, tls: TlsMaterial | undefined): Promise<FastifyInstance> {
  // Waits for Redis however long it takes, warning with backoff: a worker never listens without it.
  const wait = { log: serverLogger(config) }
  // A shutdown asked for before the app exists (Redis still awaited, the app still being built)
  // has nothing to drain: exit 0 at once, as a drain that found nothing in flight would.
  const beforeServing = (signal: NodeJS.Signals): void => {
    wait.log.info({ signal }, 'shutdown requested before the gateway was serving; nothing to drain')
    process.exit(0)
  }
  process.once('SIGTERM', beforeServing)
  process.once('SIGINT', beforeServing)
  const { app } = await startGateway(config, tls === undefined ? { wait } : { wait, tls })
  // From here close-with-grace owns both signals (installed in this same tick: none is missed).
  process.off('SIGTERM', beforeServing)
  process.off('SIGINT', beforeServing)
  // close-with-grace: exit 0 once closed, 1 when closing fails or SHUTDOWN_GRACE_MS runs out
  // (buffered log lines are still written at exit: src/log-stream.ts). Only SIGTERM and SIGINT:
  // crashes and other signals keep Node's default behaviour.
  closeWithGrace({
    delay: config.shutdownGraceMs,
    logger: false,
    skip: [...CWG_SKIP],
    onTimeout: () => { app.log.error({ graceMs: config.shutdownGraceMs }, 'shutdown grace expired with requests in flight; exiting') }
  }, async ({ signal }) => {
    app.log.info({ signal, graceMs: config.shutdownGraceMs }, 'draining: readiness is now 503')
    app.lifecycle.beginDraining()
    try {
      await app.close()
    } catch (err) {
      app.log.error({ err }, 'error while closing')
      throw err
    }
    app.log.info('shut down cleanly')
  })
  let address: string
  try {
    address = await app.listen({ port: config.port, host: config.host })
    await app.management.listen() // MANAGEMENT_PORT: /metrics, /docs, /admin move there (plugins/management.ts)
  } catch (err) {
    const problem = listenProblem(err, config)
    if (problem === null) throw err
    process.stderr.write(`portcullis: ${problem}\n`)
    process.exit(1)
  }
  // WORKERS>1: the primary writes the start-up line once, when the first worker listens.
  if (cluster.isPrimary) app.log.info(startupSummary(config, { version: packageVersion(), address }), 'portcullis started')
  return app
}

/** The primary of WORKERS>1: forks, restarts crashed workers, forwards the shutdown signal. */
function runPrimary (config: Config): void {
  const log = serverLogger(config)
  let stopping = false
  let restarts = 0
  let uncleanWorkers = 0
  startClusterMetrics()
  const fork = (): void => { cluster.fork() }
  for (let i = 0; i < config.workers; i++) fork()
  log.info({ workers: config.workers }, 'primary started workers')
  let announced = false
  cluster.on('listening', (_worker, addr) => {
    // The management listener is announced by its own line; this one is about the proxy port.
    if (announced || (config.management !== null && addr.port === config.management.port)) return
    announced = true
    const host = addr.address ?? config.host
    const address = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`
    log.info(startupSummary(config, { version: packageVersion(), address }), 'portcullis started')
  })
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      // A worker that ran out of grace (exit 1) makes the whole shutdown unclean, as with WORKERS=1.
      // One that died of the SIGTERM forwarded below had not yet installed its handler (it was
      // still starting Node): it had nothing in flight, so that is clean.
      if (code !== 0 && signal !== 'SIGTERM') uncleanWorkers++
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
