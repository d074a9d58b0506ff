/**
 * The HTTP/1.1 pieces of a WebSocket upgrade that Node leaves to the `upgrade` listener: telling a
 * WebSocket handshake from other upgrades, and writing a response head onto the raw socket.
 */
import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http'

/** A header line as it goes on the wire: name and one value. */
export type HeaderLine = readonly [string, string]

// RFC 9110 field-name (token) and field-value (visible characters, spaces and tabs): anything else
// in a value, CR or LF above all, would let it end the head and start a forged response.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/** A WebSocket opening handshake (RFC 6455 section 4.1): GET with `Upgrade` naming `websocket`, any case. */
export function isWebSocketUpgrade (method: string | undefined, headers: IncomingHttpHeaders): boolean {
  if (method !== 'GET') return false
  const upgrade = headers.upgrade
  if (typeof upgrade !== 'string') return false
  return upgrade.split(',').some((p) => p.trim().toLowerCase() === 'websocket')
}

/** True when the request announces a body (Content-Length above 0 or any Transfer-Encoding). */
export function announcesBody (headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length']
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

/** Header lines from a `{name: value | values}` object, in its order, arrays split into lines. */
export function headerLines (headers: Record<string, string | string[] | number | undefined>): HeaderLine[] {
  const lines: HeaderLine[] = []
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    if (Array.isArray(value)) for (const v of value) lines.push([name, v])
    else lines.push([name, String(value)])
  }
  return lines
}

/** Pairs of Node's `rawHeaders` ([name, value, name, value, …]) as lines, names as sent. */
export function rawHeaderLines (raw: readonly string[]): HeaderLine[] {
  const lines: HeaderLine[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) lines.push([raw[i] as string, raw[i + 1] as string])
  return lines
}

/**
 * `HTTP/1.1 <status> <reason>` and the header lines, ending with the empty line. Lines whose name
 * or value could not travel in HTTP/1.1 are left out rather than written.
 */
export function responseHead (status: number, headers: readonly HeaderLine[], reason?: string): string {
  const text = reason !== undefined && FIELD_VALUE.test(reason) && !reason.includes('\t') ? reason : (STATUS_CODES[status] ?? '')
  let head = `HTTP/1.1 ${status} ${text}\r\n`
  for (const [name, value] of headers) {
    if (TOKEN.test(name) && FIELD_VALUE.test(value)) head += `${name}: ${value}\r\n`
  }
  return head + '\r\n'
}
