/**
 * The admin API (docs/reference.md): token management behind `Authorization: Bearer $ADMIN_TOKEN`, with the
 * CLI's semantics (both use src/tokens/store.ts). Without ADMIN_TOKEN every admin path answers 404.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { createHash, timingSafeEqual } from 'node:crypto'
import { bearerToken } from '../src/lib/bearer.js'
import { TOKEN_ID_PATTERN, TOKEN_ID_SHAPE } from '../src/tokens/ids.js'
import { CreatedTokenSchema, PublicTokenSchema, TokenInputSchema } from '../src/tokens/schema.js'
import { TokenInputError, validateTokenInput } from '../src/tokens/validate.js'
import { TokenStore } from '../src/tokens/store.js'
import { adminUnauthorized, badRequest, notFound, storeUnavailable, tokenNotFound } from '../src/lib/errors.js'
import { ErrorSchema } from './schemas.js'

const IdParams = Type.Object({ id: Type.String({ pattern: TOKEN_ID_PATTERN, description: `the token id: ${TOKEN_ID_SHAPE}` }) })
const errors = { 400: ErrorSchema, 401: ErrorSchema, 404: ErrorSchema, 503: ErrorSchema }
const security = [{ adminToken: [] }]

/** Constant-time comparison of the presented admin token with ADMIN_TOKEN (digests have equal length). */
function adminTokenMatches (presented: string, expected: Buffer): boolean {
  return timingSafeEqual(createHash('sha256').update(presented).digest(), expected)
}

/** Registers /admin/tokens routes. */
export default async function adminRoutes (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { adminToken, redisKeyPrefix, rateLimitWindowSeconds } = app.config
  const expected = adminToken === null ? null : createHash('sha256').update(adminToken).digest()
  const store = new TokenStore(app.redis, redisKeyPrefix, { defaultWindowSeconds: rateLimitWindowSeconds })

  // A client may put an API key where an id belongs: the request line logs `/admin/tokens/:id`.
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, logRoutePattern: true }
    // /docs/json documents what this instance serves: without ADMIN_TOKEN the admin API is 404.
    if (expected === null) route.schema = { ...route.schema, hide: true }
  })

  // Many clients send Content-Type: application/json on every request: a GET or DELETE without a
  // body is no error. A create needs its body, and says so in the gateway's own words.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString() // a string already (parseAs), typed as either
    if (text.length > 0) return parseJson(request, text, done)
    if (request.method === 'POST') return done(badRequest('The request body is empty; a JSON object is expected'), undefined)
    done(null, undefined)
  })

  app.addHook('onRequest', async function adminAuth (request: FastifyRequest) {
    if (expected === null) throw notFound('The admin API is disabled (ADMIN_TOKEN is unset)')
    const bearer = bearerToken(request.raw.rawHeaders)
    if (!bearer.ok || !adminTokenMatches(bearer.token, expected)) throw adminUnauthorized()
  })

  // Store failures are Redis failures: 503 like the proxy, never a 500.
  const storeCall = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof TokenInputError) throw badRequest(err.message)
      throw Object.assign(storeUnavailable(), { cause: err })
    }
  }

  app.post('/admin/tokens', {
    schema: {
      tags: ['admin'],
      summary: 'Create a token; the response is the only time api_key is shown',
      security,
      body: TokenInputSchema,
      response: { 201: CreatedTokenSchema, ...errors }
    },
    attachValidation: true
  }, async (request, reply) => {
    // Ajv stops at the first error and does not name an unknown field: describe the body in the
    // CLI's words instead, every problem with its field ("foo: unknown field").
    if (request.validationError !== undefined) {
      const v = validateTokenInput(request.body)
      throw badRequest(v.ok ? request.validationError.message : new TokenInputError(v.problems).message)
    }
    const created = await storeCall(async () => await store.create(request.body))
    request.log.info({ tokenId: created.id }, 'token created')
    return reply.code(201).send(created)
  })

  app.get('/admin/tokens', {
    schema: { tags: ['admin'], summary: 'List tokens (never their keys)', security, response: { 200: Type.Array(PublicTokenSchema), ...errors } }
  }, async () => await storeCall(async () => await store.list()))

  app.get('/admin/tokens/:id', {
    schema: { tags: ['admin'], summary: 'Show one token (never its key)', security, params: IdParams, response: { 200: PublicTokenSchema, ...errors } },
    attachValidation: true
  }, async (request) => {
    // Text that cannot be an id is simply not found, without asking Redis: a 400 would quote it back.
    if (request.validationError !== undefined) throw tokenNotFound()
    const token = await storeCall(async () => await store.show(request.params.id))
    if (token === null) throw tokenNotFound()
    return token
  })

  app.delete('/admin/tokens/:id', {
    schema: {
      tags: ['admin'],
      summary: 'Revoke a token; effective on the very next request',
      security,
      params: IdParams,
      response: { 204: Type.Null({ description: 'revoked' }), ...errors }
    },
    attachValidation: true
  }, async (request, reply) => {
    if (request.validationError !== undefined) throw tokenNotFound()
    // By id only: the CLI's revoke-by-key here would invite keys into URLs, and so into the request log.
    const revoked = await storeCall(async () => await store.show(request.params.id) !== null && await store.revoke(request.params.id))
    if (!revoked) throw tokenNotFound()
    request.log.info({ tokenId: request.params.id }, 'token revoked')
    return reply.code(204).send(null)
  })

  // An "id" with a `/` in it (an imported key sent as one) is not found either, by a route of this
  // scope, so that its request line too logs a pattern and not the text.
  app.all('/admin/tokens/*', { schema: { hide: true } }, async () => { throw tokenNotFound() })
}
