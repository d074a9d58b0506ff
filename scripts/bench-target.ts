/**
 * One server of `npm run bench`, run in its own child process so autocannon (in the parent)
 * does not share an event loop with it: `node dist/scripts/bench-target.js upstream|bare|gateway|diy`.
 * IPC: the child sends {type:'ready', port, body?}; it answers {type:'stats'} with its RSS, the
 * CPU time used so far and the pauses of its full collections so far (scripts/bench-gc.ts), and
 * exits after {type:'stop'}. It exits too when the parent goes away (IPC disconnect).
 */
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { watchMajorGcs, type MajorGcPauses } from './bench-gc.js'

export type TargetRole = 'upstream' | 'bare' | 'gateway' | 'diy'

/** Messages a target sends to the parent. */
export type TargetMessage =
  | { type: 'ready', port: number, body?: string }
  | { type: 'stats', rss: number, cpuMicros: number, majorGcs: MajorGcPauses }

/** Messages the parent sends to a target. */
export type ParentMessage = { type: 'stats' } | { type: 'stop' }

/** The upstream's fixed answer: about 100 bytes of JSON. */
const UPSTREAM_BODY = JSON.stringify({
  ok: true,
  service: 'portcullis-bench-upstream',
  items: [1, 2, 3, 4, 5],
  note: 'a fixed answer of about 100 bytes'
})

/** A plain node:http server answering every request with UPSTREAM_BODY, keep-alive. */
async function startUpstream (): Promise<{ port: number, close: () => Promise<void> }> {
  const length = String(Buffer.byteLength(UPSTREAM_BODY))
  const server = createServer((req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': length })
    res.end(UPSTREAM_BODY)
  })
  // Longer than the proxies' pooled-connection idle time, so they never race a server-side close.
  server.keepAliveTimeout = 65_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** The baseline: Fastify + @fastify/reply-from with a catch-all route and nothing else. */
async function startBare (upstream: string): Promise<{ port: number, close: () => Promise<void> }> {
  // Imported here so that the bare child loads only Fastify and reply-from (its RSS is compared).
  const { default: Fastify } = await import('fastify')
  const { default: replyFrom } = await import('@fastify/reply-from')
  const app = Fastify({ logger: false })
  await app.register(replyFrom, { base: upstream })
  app.all('/*', (request, reply) => reply.from(request.url))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { port: (app.server.address() as AddressInfo).port, close: async () => { await app.close() } }
}

/**
 * The gateway as src/server.ts builds it (Redis client ready first, then buildApp with the
 * config from loadConfig), except that log lines go to a file instead of stdout, through the
 * same buffered asynchronous destination, so they are really serialised and written.
 */
async function startGateway (env: Record<string, string>, logFile: string): Promise<{ port: number, close: () => Promise<void> }> {
  const gatewayStart = await import('../src/gateway-start.js')
  const { loadConfig } = await import('../src/lib/config.js')
  const { bufferedLog } = await import('../src/log-stream.js')
  const config = loadConfig(env, { requireRoutes: true })
  // The destination production uses for stdout (src/log-stream.ts), here to a file.
  const log = bufferedLog(logFile)
  const dest = log.stream as unknown as { flushSync: () => void, end: () => void } & NodeJS.EventEmitter
  await once(dest, 'ready') // flushSync at close throws on a file that never opened
  const { app } = await gatewayStart.startGateway(config, { wait: { timeoutMs: 10_000 }, logStream: log.stream })
  await app.listen({ port: config.port, host: config.host })
  return {
    port: (app.server.address() as AddressInfo).port,
    close: async () => {
      await app.close()
      log.stopTimer()
      dest.flushSync()
      dest.end()
    }
  }
}

/**
 * The do-it-yourself stack a Fastify user would assemble instead of a gateway: @fastify/bearer-auth
 * (static keys), @fastify/rate-limit (Redis store, the same Redis, one bucket per Authorization
 * header) and @fastify/http-proxy to the same upstream, with one `info` line per request written
 * to a file through the same kind of buffered pino destination as the gateway's.
 */
async function startDiy (upstream: string, redisUrl: string, apiKey: string, prefix: string, logFile: string): Promise<{ port: number, close: () => Promise<void> }> {
  const { default: Fastify } = await import('fastify')
  const { default: bearerAuth } = await import('@fastify/bearer-auth')
  const { default: rateLimit } = await import('@fastify/rate-limit')
  const { default: httpProxy } = await import('@fastify/http-proxy')
  const { Redis } = await import('ioredis')
  const { pino } = await import('pino')
  const dest = pino.destination({ dest: logFile, sync: true, minLength: 4096 }) // as the gateway's (src/log-stream.ts)
  await once(dest, 'ready')
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  const app = Fastify({ logger: { level: 'info', stream: dest as unknown as NodeJS.WritableStream }, disableRequestLogging: true })
  await app.register(bearerAuth, { keys: new Set([apiKey]) })
  await app.register(rateLimit, {
    max: 1_000_000, timeWindow: 1000, redis, nameSpace: 'diy-bench-', keyGenerator: (req) => req.headers.authorization ?? req.ip
  })
  await app.register(httpProxy, { upstream, prefix, rewritePrefix: prefix })
  app.addHook('onResponse', (request, reply, done) => {
    request.log.info({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request')
    done()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: (app.server.address() as AddressInfo).port,
    close: async () => {
      await app.close()
      redis.disconnect()
      dest.flushSync()
      dest.end()
    }
  }
}

async function main (): Promise<void> {
  const role = process.argv[2] as TargetRole
  const send = (m: TargetMessage): void => { process.send?.(m) }
  if (process.send === undefined) throw new Error('bench-target runs as a child of scripts/bench.js (IPC needed)')
  const majorGcs = watchMajorGcs()
  let server: { port: number, close: () => Promise<void> }
  if (role === 'upstream') {
    server = await startUpstream()
  } else if (role === 'bare') {
    server = await startBare(required('BENCH_UPSTREAM'))
  } else if (role === 'gateway') {
    server = await startGateway(JSON.parse(required('BENCH_GATEWAY_ENV')) as Record<string, string>, required('BENCH_LOG_FILE'))
  } else if (role === 'diy') {
    server = await startDiy(required('BENCH_UPSTREAM'), required('BENCH_REDIS_URL'), required('BENCH_API_KEY'), required('BENCH_PREFIX'), required('BENCH_LOG_FILE'))
  } else {
    throw new Error(`unknown role ${String(role)}: expected upstream, bare, gateway or diy`)
  }
  process.on('disconnect', () => { process.exit(1) })
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'stats') {
      const cpu = process.cpuUsage()
      send({ type: 'stats', rss: process.memoryUsage.rss(), cpuMicros: cpu.user + cpu.system, majorGcs: majorGcs() })
    }
    // process.exit (not a signal) so that --cpu-prof can write its profile.
    if (m.type === 'stop') server.close().then(() => process.exit(0), () => process.exit(1))
  })
  send(role === 'upstream' ? { type: 'ready', port: server.port, body: UPSTREAM_BODY } : { type: 'ready', port: server.port })
}

function required (name: string): string {
  const v = process.env[name]
  if (v === undefined || v === '') throw new Error(`${name} is not set`)
  return v
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-target ${process.argv[2] ?? ''}: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
