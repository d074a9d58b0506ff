import fp from 'fastify-plugin'
import underPressure, { TYPE_EVENT_LOOP_DELAY, TYPE_EVENT_LOOP_UTILIZATION, TYPE_HEALTH_CHECK, TYPE_HEAP_USED_BYTES, TYPE_RSS_BYTES } from '@fastify/under-pressure'
import { pingStore } from '../src/redis-client.js'
import { storeUnavailable, underPressure as underPressureError, type GatewayError } from '../src/lib/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Which under-pressure check is failing right now (for /readyz), or null. */
    underPressureReason: () => string | null
    /**
     * The answer load shedding gives a new request right now, or null: what the onRequest hook
     * throws, for the requests no hook sees (WebSocket upgrades, routes/websocket.ts).
     */
    pressureRefusal: () => GatewayError | null
  }
  interface FastifyContextConfig {
    /** Probe routes opt out so Kubernetes sees the truth instead of a blanket 503. */
    pressureHandler?: () => undefined
  }
}

/** Lets a route (health, metrics) answer even while the gateway is under pressure. */
export const exemptFromPressure = { pressureHandler: (): undefined => undefined }

/**
 * Load shedding: event-loop delay/utilisation, heap and RSS thresholds from the environment
 * (0 = off), plus Redis PING as the external health check. Shed requests get 503 with
 * Retry-After; when the failing check is Redis, the code is STORE_UNAVAILABLE.
 */
export default fp(async function underPressurePlugin (app) {
  const p = app.config.pressure
  let redisHealthy = true
  // Load shedding starting and stopping: one line per transition, checked once per health check
  // (every second), never per shed request.
  let shedSince = 0
  let started = false // the plugin runs its first check while registering, before the decorators below exist
  const logTransition = (): void => {
    if (!started) return
    const reason = app.underPressureReason()
    if (reason !== null && shedSince === 0) {
      shedSince = Date.now()
      app.log.warn({ reason }, 'load shedding started: new requests get 503 (UNDER_PRESSURE, or STORE_UNAVAILABLE when Redis is the cause)')
    } else if (reason === null && shedSince !== 0) {
      app.log.info({ shedMs: Date.now() - shedSince }, 'load shedding stopped')
      shedSince = 0
    }
  }
  await app.register(underPressure, {
    maxEventLoopDelay: p.maxEventLoopDelayMs,
    maxEventLoopUtilization: p.maxEventLoopUtilization,
    maxHeapUsedBytes: p.maxHeapUsedBytes,
    maxRssBytes: p.maxRssBytes,
    healthCheckInterval: 1000,
    healthCheck: async () => {
      logTransition() // the state as of the previous check and the latest samples
      try {
        await pingStore(app.redis)
        redisHealthy = true
      } catch {
        redisHealthy = false
      }
      return redisHealthy
    },
    // A rejected promise goes to the error handler, which answers in the shape of docs/reference.md.
    pressureHandler: async (_request, _reply, type) => {
      throw refusalFor(type)
    }
  })

  app.addHook('onReady', async () => { started = true })

  /** The first memory or event-loop-delay threshold exceeded, in the onRequest hook's order, or null. */
  const overThreshold = (m: ReturnType<typeof app.memoryUsage>): string | null => {
    if (p.maxEventLoopDelayMs > 0 && m.eventLoopDelay > p.maxEventLoopDelayMs) return TYPE_EVENT_LOOP_DELAY
    if (p.maxHeapUsedBytes > 0 && m.heapUsed > p.maxHeapUsedBytes) return TYPE_HEAP_USED_BYTES
    if (p.maxRssBytes > 0 && m.rssBytes > p.maxRssBytes) return TYPE_RSS_BYTES
    return null
  }

  // The checks in the order the plugin's onRequest hook makes them (thresholds, then Redis, then
  // utilisation), so both give the same answer.
  app.decorate('pressureRefusal', (): GatewayError | null => {
    if (!app.isUnderPressure()) return null
    return refusalFor(overThreshold(app.memoryUsage()) ?? (redisHealthy ? TYPE_EVENT_LOOP_UTILIZATION : TYPE_HEALTH_CHECK))
  })

  app.decorate('underPressureReason', (): string | null => {
    if (!app.isUnderPressure()) return null
    if (!redisHealthy) return 'redis'
    const m = app.memoryUsage()
    switch (overThreshold(m)) {
      case TYPE_EVENT_LOOP_DELAY: return `eventLoopDelay ${Math.round(m.eventLoopDelay)} ms`
      case TYPE_HEAP_USED_BYTES: return `heapUsedBytes ${m.heapUsed}`
      case TYPE_RSS_BYTES: return `rssBytes ${m.rssBytes}`
      default: return `eventLoopUtilization ${m.eventLoopUtilized.toFixed(2)}`
    }
  })
}, { name: 'portcullis-under-pressure', fastify: '5.x', dependencies: ['portcullis-config', 'portcullis-redis'] })

/** Shed requests get 503 with Retry-After; when the failing check is Redis, the code is STORE_UNAVAILABLE. */
function refusalFor (type: string): GatewayError {
  return type === TYPE_HEALTH_CHECK ? storeUnavailable() : underPressureError(type)
}
