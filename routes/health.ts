/**
 * Kubernetes probes. /healthz says the process runs; /readyz says this instance should get
 * traffic: Redis answers PING, it is not draining, and it is not under pressure.
 */
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { exemptFromPressure } from '../plugins/under-pressure.js'
import { pingStore } from '../src/redis-client.js'

const HealthBody = Type.Object({ status: Type.Literal('ok') }, { description: 'The process runs' })
const readyBody = (description: string): ReturnType<typeof Type.Object> => Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  reason: Type.Optional(Type.String({ description: 'Which check failed: `redis: …`, `shutting_down` or `under_pressure: …`' }))
}, { description })

/** Registers GET /healthz and GET /readyz. */
export default async function healthRoutes (app: FastifyInstance): Promise<void> {
  app.get('/healthz', {
    config: exemptFromPressure,
    schema: { tags: ['health'], summary: 'Liveness: 200 while the process runs', response: { 200: HealthBody } }
  }, async () => ({ status: 'ok' as const }))

  app.get('/readyz', {
    config: exemptFromPressure,
    schema: {
      tags: ['health'],
      summary: 'Readiness: Redis answers, not draining, not under pressure',
      response: {
        200: readyBody('Ready: send traffic here'),
        503: readyBody('Not ready (with Retry-After): Redis unreachable, draining after SIGTERM, or under pressure')
      }
    }
  }, async (_request, reply) => {
    const reason = await notReadyReason(app)
    if (reason === null) return { status: 'ready' as const }
    reply.code(503).header('retry-after', '1')
    return { status: 'unavailable' as const, reason }
  })
}

async function notReadyReason (app: FastifyInstance): Promise<string | null> {
  if (app.lifecycle.draining) return 'shutting_down'
  const pressure = app.underPressureReason()
  // The under-pressure health check is the Redis PING: name Redis, as a failing PING below would.
  if (pressure === 'redis') return 'redis: not answering PING'
  if (pressure !== null) return `under_pressure: ${pressure}`
  try {
    await pingStore(app.redis)
    return null
  } catch (err) {
    return `redis: ${(err as Error).message}`
  }
}
