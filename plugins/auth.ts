import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { bearerToken, queryCarriesToken } from '../src/lib/bearer.js'
import { digestApiKey } from '../src/tokens/keys.js'
import { MatcherCache } from '../src/lib/matcher-cache.js'
import { FifoMap } from 'toad-cache'
import { GATE_PLUGIN } from './gate.js'
import { TARGET_PLUGIN } from './target.js'
import { routeForbidden, storeUnavailable, tokenExpired, tokenInvalid, tokenMissing } from '../src/lib/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The token check of a proxied request or a WebSocket upgrade (routes/proxy.ts, routes/websocket.ts):
     * 401 for a missing/bad/unknown/expired token, 403 for a forbidden route. Its outcome is
     * counted once, in onResponse, from the request's state (plugins/metrics.ts).
     */
    authorize: (subject: AuthSubject) => Promise<void>
  }
  interface FastifyRequest {
    /** The authenticated token's public id (never the key), for X-Consumer-Id and the logs. */
    consumer: { id: string } | null
  }
}

/** What the token check reads (method, raw headers, target) and fills in (consumer, rateLimit). */
export type AuthSubject = Pick<FastifyRequest, 'method' | 'target' | 'consumer' | 'rateLimit'> & { raw: { rawHeaders: string[] } }

/** How many API keys' digests each gateway process keeps (a FIFO: the oldest goes first). */
export const DIGEST_CACHE_SIZE = 1024

/**
 * Bearer authentication and route permission. It runs as an onRequest hook, before any body is
 * read, and looks the token up through the gate (plugins/gate.ts), whose one script call also
 * rate-limits it (one round trip; plugins/rate-limit.ts enforces the decision it hands over):
 * so a 403 has consumed one unit of quota, as docs/design-notes.md says.
 */
export default fp(async function authPlugin (app) {
  app.decorateRequest('consumer', null)
  // Per app: each gateway instance tells the script which routes revision it holds.
  const matchers = new MatcherCache()
  // Key → digest of the keys seen lately: SHA-256 is the largest step of this check otherwise
  // (about 1.3 µs a request, docs/performance.md). The keys are held in this process's memory only,
  // as every request's Authorization header is anyway; a flood of random keys only evicts.
  const digests = new FifoMap<string>(DIGEST_CACHE_SIZE, 0)

  app.decorate('authorize', async function authorize (request: AuthSubject) {
    const target = request.target
    if (target === null) throw new Error('authorize runs after the proxy resolved the target')
    const bearer = bearerToken(request.raw.rawHeaders)
    if (!bearer.ok) {
      throw bearer.missing ? tokenMissing() : tokenInvalid(`Malformed Authorization header: ${bearer.problem}`)
    }
    // A token in the URL would be forwarded upstream and kept in access logs: refuse the request.
    if (queryCarriesToken(target.query, bearer.token)) {
      throw tokenInvalid('Tokens are not accepted in the query string')
    }
    let digest = digests.get(bearer.token)
    if (digest === undefined) digests.set(bearer.token, digest = digestApiKey(bearer.token))
    // Held across the call, so an eviction meanwhile cannot orphan an "unchanged" reply.
    const held = matchers.get(digest)
    const result = await app.gate.check(digest, held?.rev)
    if (result.status === 'unknown') {
      throw tokenInvalid()
    }
    request.consumer = { id: result.id }
    if (result.status === 'expired') {
      throw tokenExpired()
    }
    const matcher = matchers.resolve(digest, held, result.allowedRoutes, result.routesRev)
    if (matcher === null) {
      // Unreachable while decodeGateReply checks the revision; were it not, refuse rather than guess.
      throw storeUnavailable()
    }
    if (!matcher.allows(request.method, target.path)) {
      throw routeForbidden(request.method, target.path)
    }
    request.rateLimit = result
  })
}, { name: 'portcullis-auth', fastify: '5.x', dependencies: [GATE_PLUGIN, TARGET_PLUGIN, 'portcullis-rate-limit'] })
