/**
 * Every answer the gateway makes itself comes from this module: one error class per code of
 * docs/reference.md. Fastify's error handler turns them into `{statusCode, code, error, message}`
 * and applies `headers` (WWW-Authenticate, Retry-After) from the error object.
 */
import createFastifyError from '@fastify/error'
import { STATUS_CODES } from 'node:http'

type Headers = Record<string, string>

/** An error the gateway answers with; `headers` are sent with the answer. */
export interface GatewayError extends Error {
  code: string
  statusCode: number
  headers?: Headers
}

const codes = new Set<string>()
/** Every code this module answers with, collected as the error classes below are made. */
export const GATEWAY_CODES: ReadonlySet<string> = codes

/** @fastify/error's createError that also records the code: the code list is the classes themselves. */
const createError = ((code: string, ...rest: [string, number?]) => {
  codes.add(code)
  return createFastifyError(code, ...rest)
}) as typeof createFastifyError

const BadPath = createError('BAD_PATH', 'Path cannot be normalised safely: %s', 400)
const RouteNotFound = createError('ROUTE_NOT_FOUND', 'No route for this path', 404)
const TokenMissing = createError('TOKEN_MISSING', 'A bearer token is required: Authorization: Bearer <token>', 401)
const TokenInvalid = createError('TOKEN_INVALID', '%s', 401)
const TokenExpired = createError('TOKEN_EXPIRED', 'The token has expired', 401)
const RouteForbidden = createError('ROUTE_FORBIDDEN', 'The token may not call %s %s', 403)
const RateLimited = createError('RATE_LIMITED', 'Rate limit exceeded; retry in %d s', 429)
const UpstreamError = createError('UPSTREAM_ERROR', 'The upstream %s', 502)
const UpstreamTimeout = createError('UPSTREAM_TIMEOUT', 'The upstream did not answer within %d ms', 504)
const StoreUnavailable = createError('STORE_UNAVAILABLE', 'The token store is unavailable; retry shortly', 503)
const CircuitOpen = createError('CIRCUIT_OPEN', 'The upstream of this route is failing; retry in %d s', 503)
const UnderPressure = createError('UNDER_PRESSURE', 'The gateway is under pressure (%s); retry shortly', 503)
const AdminUnauthorized = createError('ADMIN_UNAUTHORIZED', 'The admin API needs Authorization: Bearer $ADMIN_TOKEN', 401)
const NotFound = createError('NOT_FOUND', '%s', 404)
const TokenNotFound = createError('TOKEN_NOT_FOUND', 'No token with this id', 404)
const BadRequest = createError('BAD_REQUEST', '%s', 400)
const ConcurrencyLimited = createError('CONCURRENCY_LIMITED', 'This token already has %d requests in flight on this gateway; retry in 1 s', 429)
const Internal = createError('INTERNAL_ERROR', 'Internal Server Error', 500)
const PayloadTooLarge = createError('PAYLOAD_TOO_LARGE', 'The request body is too large', 413)
const HeadersTooLarge = createError('HEADERS_TOO_LARGE', 'The request line and headers are too large', 431)
const UriTooLong = createError('URI_TOO_LONG', 'The request target is too long', 414)
const MethodNotAllowed = createError('METHOD_NOT_ALLOWED', '%s is not served by this gateway', 405)
const UnsupportedMediaType = createError('UNSUPPORTED_MEDIA_TYPE', 'This endpoint takes application/json', 415)
const RequestTimeout = createError('REQUEST_TIMEOUT', '%s', 408)
const ExpectationFailed = createError('EXPECTATION_FAILED', 'Only Expect: 100-continue is supported', 417)

const bearerChallenge = (error?: string): Headers =>
  ({ 'www-authenticate': error === undefined ? 'Bearer' : `Bearer error="${error}"` })

function withHeaders<E extends Error> (err: E, headers: Headers): E & { headers: Headers } {
  return Object.assign(err, { headers })
}

/** 400: the request target cannot be normalised safely (docs/forwarding.md). */
export const badPath = (reason: string): GatewayError => new BadPath(reason)
/** 404: no configured route prefix covers the path. */
export const routeNotFound = (): GatewayError => new RouteNotFound()
/** 401: no Authorization header at all. */
export const tokenMissing = (): GatewayError => withHeaders(new TokenMissing(), bearerChallenge())
/** 401: malformed, unknown or revoked token; `detail` never contains the token itself. */
export const tokenInvalid = (detail = 'The token is invalid, unknown or revoked'): GatewayError =>
  withHeaders(new TokenInvalid(detail), bearerChallenge('invalid_token'))
/** 401: the token's expires_at has passed. */
export const tokenExpired = (): GatewayError => withHeaders(new TokenExpired(), bearerChallenge('invalid_token'))
/** 403: the token's allowed_routes do not cover this method and normalised path. */
export const routeForbidden = (method: string, path: string): GatewayError =>
  new RouteForbidden(method, path.length > 200 ? path.slice(0, 200) + '…' : path)
/** 429: over the token's limit; `retryAfter` in whole seconds. */
export const rateLimited = (retryAfter: number, headers: Headers): GatewayError =>
  withHeaders(new RateLimited(retryAfter), { ...headers, 'retry-after': String(retryAfter) })
/** 502: the upstream refused, reset or answered garbage; `what` says which. */
export const upstreamError = (what: string): GatewayError => new UpstreamError(what)
/** 504: no response head from the upstream within the route's timeout. */
export const upstreamTimeout = (timeoutMs: number): GatewayError => new UpstreamTimeout(timeoutMs)
/** 503: Redis did not answer; authentication never fails open. */
export const storeUnavailable = (retryAfter = 1): GatewayError =>
  withHeaders(new StoreUnavailable(), { 'retry-after': String(retryAfter) })
/** 503: the route's circuit breaker is open (or its one half-open probe is in flight); nothing was sent upstream. */
export const circuitOpen = (retryAfter: number): GatewayError =>
  withHeaders(new CircuitOpen(retryAfter), { 'retry-after': String(retryAfter) })
/** 503: under-pressure tripped one of its thresholds. */
export const underPressure = (what: string, retryAfter = 1): GatewayError =>
  withHeaders(new UnderPressure(what), { 'retry-after': String(retryAfter) })
/** 401 from the admin API. */
export const adminUnauthorized = (): GatewayError => withHeaders(new AdminUnauthorized(), bearerChallenge())
/** 404 with a specific message (admin API: unknown token id, or the admin API is disabled). */
export const notFound = (message: string): GatewayError => new NotFound(message)
/** 404 from the admin API for an unknown token id; the id is not echoed (a key sent as one would be). */
export const tokenNotFound = (): GatewayError => new TokenNotFound()
/** 400 with a specific message (admin API: invalid body). */
export const badRequest = (message: string): GatewayError => new BadRequest(message)
/** 413: a body over the endpoint's limit (admin API). */
export const payloadTooLarge = (): GatewayError => new PayloadTooLarge()
/** 431: Node's parser refused the head (request line and headers over its size limit). */
export const headersTooLarge = (): GatewayError => new HeadersTooLarge()
/** 414: the request target is longer than the router takes. */
export const uriTooLong = (): GatewayError => new UriTooLong()
/** 405: a method the gateway never serves (CONNECT); `allow` lists what it does serve. */
export const methodNotAllowed = (method: string, allow: string): GatewayError =>
  withHeaders(new MethodNotAllowed(method), { allow })
/** 415: a body in a media type the endpoint does not parse (admin API; the proxy takes any). */
export const unsupportedMediaType = (): GatewayError => new UnsupportedMediaType()
/** 408: the client did not send what it announced in time; `what` says which part. */
export const requestTimeout = (what: string): GatewayError => new RequestTimeout(what)
/** 417: an Expect value other than 100-continue. */
export const expectationFailed = (): GatewayError => new ExpectationFailed()
/** 408: no request body byte for CLIENT_BODY_TIMEOUT_MS; the upstream request was aborted. */
export const bodyIdleTimeout = (idleMs: number): GatewayError => new RequestTimeout(`No request body byte arrived for ${idleMs} ms`)
/** 429: the token holds MAX_IN_FLIGHT_PER_TOKEN requests on this instance already; refused before any body byte is read. */
export const concurrencyLimited = (limit: number): GatewayError =>
  withHeaders(new ConcurrencyLimited(limit), { 'retry-after': '1' })
/** 500 that reveals nothing about its cause. */
export const internalError = (): GatewayError => new Internal()

/** The JSON body of an answer the gateway makes itself: `{statusCode, code, error, message}`. */
export function errorBody (err: GatewayError): { statusCode: number, code: string, error: string, message: string } {
  return { statusCode: err.statusCode, code: err.code, error: STATUS_CODES[err.statusCode] ?? 'Error', message: err.message }
}

/** True for errors made by this module (or shaped like them), which are safe to show to clients. */
export function isGatewayError (err: unknown): err is GatewayError {
  return err instanceof Error && typeof (err as GatewayError).code === 'string' &&
    typeof (err as GatewayError).statusCode === 'number' && GATEWAY_CODES.has((err as GatewayError).code)
}
