import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { rateLimitHeaders, type GateDecision } from '../src/lib/gcra.js'
import { rateLimited } from '../src/lib/errors.js'
import { GATE_PLUGIN } from './gate.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook of the proxy scope: RateLimit headers on every answer, 429 when limited. */
    enforceRateLimit: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** The decision behind `enforceRateLimit`: the RateLimit headers to send, or throws the 429. */
    rateLimitVerdict: (state: GateDecision) => Record<string, string>
  }
  interface FastifyRequest {
    /** The GCRA decision for this request's token, set by plugins/auth.ts from `app.gate.check`. */
    rateLimit: GateDecision | null
  }
}

/**
 * Enforces the decision the gate (plugins/gate.ts) made in Redis: the RateLimit headers on every
 * answer and the 429. It sends no command of its own; the decision arrives with the token check.
 */
export default fp(async function rateLimitPlugin (app) {
  app.decorateRequest('rateLimit', null)

  app.decorate('enforceRateLimit', async function enforceRateLimit (request: FastifyRequest, reply: FastifyReply) {
    const state = request.rateLimit
    if (state === null) return
    reply.headers(app.rateLimitVerdict(state))
  })
  app.decorate('rateLimitVerdict', function rateLimitVerdict (state: GateDecision): Record<string, string> {
    const headers = rateLimitHeaders(state)
    if (state.status === 'limited') {
      app.metrics.rateLimitDecision('limited')
      throw rateLimited(state.resetSeconds, headers)
    }
    app.metrics.rateLimitDecision('allowed')
    return headers
  })
}, { name: 'portcullis-rate-limit', fastify: '5.x', dependencies: [GATE_PLUGIN, 'portcullis-metrics'] })
