/**
 * buildApp(config): the whole gateway, built the same way by production (src/server.ts) and by
 * the tests. Plugins and routes are registered in one visible order.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { IDLE_CONNECTION_TIMEOUT_MS, type Config } from './lib/config.js'
import type { RedisClient } from './redis-client.js'
import { readTlsMaterial, type TlsMaterial } from './tls.js'
import { acceptableRequestId } from './lib/forward-headers.js'
import { LOG_TIMESTAMP, bufferedLog, logStream } from './log-stream.js'
import configPlugin from '../plugins/config.js'
import errorsPlugin, { sendError, toGatewayError } from '../plugins/errors.js'
import serverEventsPlugin, { clientErrorHandler } from '../plugins/server-events.js'
import redisPlugin from '../plugins/redis.js'
import shutdownPlugin from '../plugins/shutdown.js'
import managementPlugin from '../plugins/management.js'
import underPressurePlugin from '../plugins/under-pressure.js'
import metricsPlugin from '../plugins/metrics.js'
import swaggerPlugin from '../plugins/swagger.js'
import targetPlugin from '../plugins/target.js'
import requestLogPlugin from '../plugins/request-log.js'
import requestIdPlugin from '../plugins/request-id.js'
import gatePlugin from '../plugins/gate.js'
import rateLimitPlugin from '../plugins/rate-limit.js'
import authPlugin from '../plugins/auth.js'
import healthRoutes from '../routes/health.js'
import metricsRoutes from '../routes/metrics.js'
import docsRoutes from '../routes/docs.js'
import adminRoutes from '../routes/admin.js'
import proxyRoutes from '../routes/proxy.js'

export interface BuildOptions {
  /** A ready Redis client; when absent the redis plugin makes one from the config. */
  redis?: RedisClient
  /** Where log lines go (tests capture them); default stdout. */
  logStream?: NodeJS.WritableStream
  /** The proxy listener's certificate and key, already checked (src/tls.ts); read from config.tls when absent. */
  tls?: TlsMaterial
  /** How long an idle client connection stays open (ms); IDLE_CONNECTION_TIMEOUT_MS when absent (tests shorten it). */
  idleTimeoutMs?: number
}

/** Paths redacted from every log line: the token must never reach a log. */
// Explicit paths only: a wildcard makes pino walk every field of every line (10 µs → 4.5 µs per
// request line in the bench). No log call passes headers or token records; a test greps the logs.
export const LOG_REDACT = ['req.headers.authorization', 'headers.authorization', 'authorization', 'api_key']

const streamOption = (stream: NodeJS.WritableStream | undefined): { stream?: NodeJS.WritableStream } => stream === undefined ? {} : { stream }

/** Builds the gateway; call `listen` (src/server.ts) or `inject` on the result. */
export async function buildApp (config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const idleTimeoutMs = opts.idleTimeoutMs ?? IDLE_CONNECTION_TIMEOUT_MS
  // JSON lines to stdout go through a buffer, not one write(2) per line (docs/performance.md).
  const buffered = opts.logStream === undefined && config.logFormat === 'json' ? bufferedLog(1) : null
  const fastifyOptions: FastifyServerOptions = {
    logger: {
      level: config.logLevel,
      redact: { paths: LOG_REDACT, censor: '[redacted]' },
      timestamp: LOG_TIMESTAMP,
      ...streamOption(buffered?.stream ?? logStream(config.logFormat, opts.logStream))
    },
    logController: new LogController({ disableRequestLogging: true }), // plugins/request-log.ts writes one line per request
    genReqId: (req: IncomingMessage) => acceptableRequestId(req.headers['x-request-id']) ?? randomUUID(),
    trustProxy: config.trustProxy as boolean | string | string[], // a hop count works too (proxy-addr), the types lag
    return503OnClosing: false, // plugins/shutdown.ts serves in-flight keep-alive requests with Connection: close
    // An Http2SecureServer has no closeIdleConnections: plugins/shutdown.ts closes its idle ones.
    forceCloseConnections: config.tls === null ? 'idle' : false,
    keepAliveTimeout: idleTimeoutMs,
    requestTimeout: 0, // uploads stream for as long as they need; UPSTREAM_TIMEOUT_MS guards the upstream side
    connectionTimeout: 0,
    routerOptions: { maxParamLength: 8192 },
    // Admin bodies are refused, not silently repaired: the same answers as the CLI gives.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    // The router refuses some targets (bad percent-encoding) before any hook runs: answer and log here.
    frameworkErrors: (err, req, reply) => {
      const gwErr = toGatewayError(err)
      req.log.info({ method: req.method, status: gwErr.statusCode, code: gwErr.code, remoteAddress: req.ip }, 'request')
      return sendError(reply, gwErr)
    },
    clientErrorHandler // Node's parser refusals (400, 431) get the gateway's JSON answer: plugins/server-events.ts
  }
  // TLS is for this (the proxy) listener only: ALPN offers h2 and http/1.1 (RFC 9113 section 3.2).
  const tls = opts.tls ?? (config.tls === null ? null : readTlsMaterial(config.tls))
  const app = Fastify(tls === null
    ? fastifyOptions
    // http2SessionTimeout: an HTTP/2 session silent this long gets GOAWAY (its open streams finish).
    : { ...fastifyOptions, http2: true, http2SessionTimeout: idleTimeoutMs, https: { allowHTTP1: true, cert: tls.cert, key: tls.key } } as FastifyServerOptions)
  if (tls !== null) {
    // Fastify sets these on an http.Server only. The HTTP/1.1 side of this listener (allowHTTP1)
    // would otherwise keep an idle keep-alive connection forever and cut any request still
    // arriving after Node's 300 s: the same limits as the plain listener instead.
    const server = app.server as unknown as { keepAliveTimeout: number, requestTimeout: number }
    server.keepAliveTimeout = idleTimeoutMs
    server.requestTimeout = 0
  }
  if (buffered !== null) app.addHook('onClose', async () => { buffered.stopTimer() })

  await app.register(configPlugin, { config })
  await app.register(errorsPlugin)
  await app.register(shutdownPlugin)
  await app.register(managementPlugin) // its listener guard runs before every other onRequest hook
  await app.register(requestIdPlugin)
  await app.register(targetPlugin)
  await app.register(requestLogPlugin)
  await app.register(redisPlugin, opts.redis === undefined ? {} : { client: opts.redis })
  await app.register(underPressurePlugin)
  await app.register(metricsPlugin)
  await app.register(serverEventsPlugin)
  await app.register(swaggerPlugin)
  await app.register(gatePlugin)
  await app.register(rateLimitPlugin)
  await app.register(authPlugin)

  await app.register(healthRoutes)
  await app.register(metricsRoutes)
  await app.register(docsRoutes)
  await app.register(adminRoutes)
  await app.register(proxyRoutes)
  return app
}
