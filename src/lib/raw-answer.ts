/**
 * Answers written straight to a socket, where Node gives no request or response object: a
 * request its HTTP parser refused (the server's `clientError`) and CONNECT (`connect`).
 */
import { STATUS_CODES } from 'node:http'
import { badPath, badRequest, errorBody, headersTooLarge, requestTimeout, type GatewayError } from './errors.js'

/**
 * The answer to one of Node's parser refusals, by its error code; null when there is no one to
 * answer (the client reset the connection). Node counts the request line in its header size
 * limit, so an over-long target is a 431 too, never a 414.
 */
export function parserRefusal (code: string | undefined): GatewayError | null {
  if (code === 'ECONNRESET' || code === 'EPIPE') return null
  if (code === 'HPE_HEADER_OVERFLOW') return headersTooLarge()
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return requestTimeout('The request head was not received in time')
  // A target with bytes HTTP does not allow (controls, spaces, non-ASCII, no leading slash…).
  if (code === 'HPE_INVALID_URL') return badPath('the request target is not valid HTTP')
  return badRequest('The request is not valid HTTP/1.1')
}

/** The bytes of a complete HTTP/1.1 answer carrying `err`'s JSON body; the connection closes after it. */
export function rawHttpAnswer (err: GatewayError, requestId: string): Buffer {
  const body = JSON.stringify(errorBody(err))
  const headers: Record<string, string> = {
    ...err.headers,
    'x-request-id': requestId,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    date: new Date().toUTCString(),
    connection: 'close'
  }
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  const head = `HTTP/1.1 ${err.statusCode} ${STATUS_CODES[err.statusCode] ?? 'Error'}\r\n${lines}\r\n`
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body, 'utf8')])
}
