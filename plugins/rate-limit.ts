import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { GCRA_COMMAND, GCRA_SCRIPT, decodeGateReply, rateLimitHeaders, tokenKeys, type GateResult } from '../src/lib/gcra.js'
import { rateLimited, storeUnavailable } from '../src/lib/errors.js'

type LimitedOrAllowed = Extract<GateResult, { status: 'allowed' | 'limited' }>

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The hot path's only Redis command: token record + GCRA decision in one script call.
     * `routesRev` is the routes revision the caller has compiled for this token ('' for none):
     * the reply then carries the routes only when the stored revision differs.
     */
    gate: { check: (digest: string, routesRev?: string) => Promise<GateResult> }
    /** onRequest hook of the proxy scope: RateLimit headers on every answer, 429 when limited. */
    enforceRateLimit: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** The decision behind `enforceRateLimit`: the RateLimit headers to send, or throws the 429. */
    rateLimitVerdict: (state: LimitedOrAllowed) => Record<string, string>
  }
  interface FastifyRequest {
    /** The GCRA decision for this request's token, set by plugins/auth.ts from `gate.check`. */
    rateLimit: LimitedOrAllowed | null
  }
}

type GateCommand = (record: string, limiter: string, defaultWindow: number, cost: number, routesRev: string) => Promise<unknown>

/**
 * GCRA rate limiting shared by every gateway instance through one atomic Redis script
 * (src/lib/gcra.lua). `defineCommand` sends EVALSHA and falls back to EVAL on NOSCRIPT, so a
 * Redis restart or SCRIPT FLUSH heals by itself. Any Redis failure is a 503, never a pass.
 */
export default fp(async function rateLimitPlugin (app) {
  const client = app.redisClient
  client.defineCommand(GCRA_COMMAND, { numberOfKeys: 2, lua: GCRA_SCRIPT })
  const run = (client as unknown as Record<string, GateCommand>)[GCRA_COMMAND] as GateCommand
  const { redisKeyPrefix: prefix, rateLimitWindowSeconds: defaultWindow } = app.config

  app.decorate('gate', {
    async check (digest: string, routesRev = ''): Promise<GateResult> {
      const keys = tokenKeys(prefix, digest)
      const started = performance.now()
      try {
        const result = decodeGateReply(await run.call(client, keys.record, keys.limiter, defaultWindow, 1, routesRev), routesRev)
        app.metrics.observeRedis((performance.now() - started) / 1000, true)
        return result
      } catch (err) {
        // Refused, timed out, or a reply we cannot read: all the same to a client, a 503.
        app.metrics.observeRedis((performance.now() - started) / 1000, false)
        app.metrics.rateLimitDecision('store_unavailable')
        app.metrics.authDecision('STORE_UNAVAILABLE')
        throw Object.assign(storeUnavailable(), { cause: err })
      }
    }
  })

  app.decorateRequest('rateLimit', null)

  app.decorate('enforceRateLimit', async function enforceRateLimit (request: FastifyRequest, reply: FastifyReply) {
    const state = request.rateLimit
    if (state === null) return
    reply.headers(app.rateLimitVerdict(state))
  })
  app.decorate('rateLimitVerdict', function rateLimitVerdict (state: LimitedOrAllowed): Record<string, string> {
    const headers = rateLimitHeaders(state)
    if (state.status === 'limited') {
      app.metrics.rateLimitDecision('limited')
      throw rateLimited(state.resetSeconds, headers)
    }
    app.metrics.rateLimitDecision('allowed')
    return headers
  })
}, { name: 'portcullis-rate-limit', fastify: '5.x', dependencies: ['portcullis-config', 'portcullis-redis', 'portcullis-metrics'] })
