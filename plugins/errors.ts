import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import { normaliseTarget } from '../src/lib/path.js'
import { isHttp2 } from './shutdown.js'
import {
  badPath, badRequest, errorBody, internalError, isGatewayError, notFound, payloadTooLarge,
  requestTimeout, routeNotFound, unsupportedMediaType, uriTooLong, headersTooLarge, type GatewayError
} from '../src/lib/errors.js'

/**
 * Fastify's own 4xx as gateway answers, by status, with fixed messages: theirs can quote the body
 * (a JSON SyntaxError does) and their `FST_…` codes are no part of the contract.
 */
const CLIENT_ERRORS: Record<number, () => GatewayError> = {
  404: () => notFound('Not found'),
  408: () => requestTimeout('The request was not received in time'),
  413: payloadTooLarge,
  414: uriTooLong,
  415: unsupportedMediaType,
  431: headersTooLarge
}

/** Turns any error into the JSON body of docs/reference.md; unknown errors become a 500 that reveals nothing. */
export function toGatewayError (err: FastifyError | GatewayError | Error): GatewayError {
  if (isGatewayError(err)) return err
  const e = err as FastifyError
  if (e.validation !== undefined) return badRequest(e.message)
  if (e.code === 'FST_ERR_BAD_URL') return badPath('invalid percent-encoding')
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const make = CLIENT_ERRORS[e.statusCode]
    if (make !== undefined) return make()
    return badRequest(e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e instanceof SyntaxError
      ? 'The body is not valid JSON'
      : 'The request is malformed')
  }
  return internalError()
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The code of the answer the gateway made itself (metrics count it), null for upstream answers. */
    errorCode: string | null
  }
}

/** Sends an error as `{statusCode, code, error, message}` with its headers, and notes its code on the request. */
export function sendError (reply: FastifyReply, err: GatewayError): FastifyReply {
  reply.request.errorCode = err.code
  if (err.headers !== undefined) reply.headers(err.headers)
  // A refused upload is not read to its end: close the connection instead of draining the body.
  // Not on HTTP/2, which forbids the header (RFC 9113 section 8.2.2): there Node ends the answered stream
  // with RST_STREAM NO_ERROR (RFC 9113 section 8.1) and the connection serves on.
  if (!isHttp2(reply.request.raw) && hasUnreadBody(reply.request.raw)) reply.header('connection', 'close')
  return reply.code(err.statusCode).type('application/json; charset=utf-8').send(errorBody(err))
}

function hasUnreadBody (req: IncomingMessage): boolean {
  if (req.complete || req.readableEnded) return false
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

/**
 * The root error and not-found handlers. A target that the router did not match is normalised
 * first, so an absolute-form or otherwise unsafe target is a 400 BAD_PATH, not a 404.
 */
export default fp(async function errorsPlugin (app) {
  app.decorateRequest('errorCode', null)
  app.setErrorHandler(function gatewayErrorHandler (err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const gwErr = toGatewayError(err)
    if (gwErr.statusCode >= 500 && gwErr.code === 'INTERNAL_ERROR') request.log.error({ err }, 'unhandled error')
    return sendError(reply, gwErr)
  })
  app.setNotFoundHandler(function gatewayNotFound (request: FastifyRequest, reply: FastifyReply) {
    const normalised = normaliseTarget(request.raw.url ?? '')
    return sendError(reply, normalised.ok ? routeNotFound() : badPath(normalised.reason))
  })
}, { name: 'portcullis-errors', fastify: '5.x' })
