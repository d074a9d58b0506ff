/**
 * GET /metrics: Prometheus text format. With WORKERS>1 any worker answers with the sum over all
 * workers (src/cluster-metrics.ts), so one scrape target per instance is enough.
 */
import cluster from 'node:cluster'
import type { FastifyInstance } from 'fastify'
import { exemptFromPressure } from '../plugins/under-pressure.js'
import { clusterMetricsText } from '../src/cluster-metrics.js'

/** Registers GET /metrics. */
export default async function metricsRoutes (app: FastifyInstance): Promise<void> {
  app.get('/metrics', {
    config: exemptFromPressure, // a scrape must still work while requests are being shed
    schema: {
      tags: ['metrics'],
      summary: 'Prometheus metrics (text exposition format 0.0.4)',
      response: {
        200: {
          description: 'Counters and histograms of this instance (all its workers summed)',
          content: { 'text/plain': { schema: { type: 'string' } } }
        }
      }
    }
  }, async (_request, reply) => {
    const registry = app.metrics.registry
    const text = cluster.isWorker ? await clusterMetricsText() : await registry.metrics()
    return reply.type(registry.contentType).send(text)
  })
}
