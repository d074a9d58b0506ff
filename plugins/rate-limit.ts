import fp from 'fastify-plugin'
import { rateLimitHeaders, type GateDecision } from '../src/lib/gcra.js'
import { rateLimited } from '../src/lib/errors.js'
import { GATE_PLUGIN } from './gate.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The RateLimit headers to send for a decision, or throws the 429 (counted in onResponse, plugins/metrics.ts). */
    rateLimitVerdict: (state: GateDecision) => Record<string, string>
  }
  interface FastifyRequest {
    /** The GCRA decision for this request's token, set by plugins/auth.ts from `app.gate.check`. */
    rateLimit: GateDecision | null
  }
}

/**
 * Enforces the decision the gate (plugins/gate.ts) made in Redis: the RateLimit headers on every
 * answer and the 429 (routes/proxy.ts and routes/websocket.ts call it after the token check). It
 * sends no command of its own; the decision arrives with the token check.
 */
export default fp(async function rateLimitPlugin (app) {
  app.decorateRequest('rateLimit', null)

  app.decorate('rateLimitVerdict', function rateLimitVerdict (state: GateDecision): Record<string, string> {
    const headers = rateLimitHeaders(state)
    if (state.status === 'limited') throw rateLimited(state.resetSeconds, headers)
    return headers
  })
}, { name: 'portcullis-rate-limit', fastify: '5.x', dependencies: [GATE_PLUGIN] })
