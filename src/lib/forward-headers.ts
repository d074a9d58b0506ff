/**
 * Header rules of docs/forwarding.md, as pure functions over Node's lower-cased header objects. The gateway
 * sets its own headers after stripping, so a client naming them in `Connection` cannot remove them.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { BlockList, isIPv4, isIPv6 } from 'node:net'

/** Hop-by-hop headers (RFC 9110 section 7.6.1) plus the legacy proxy ones; never forwarded either way. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization',
  'proxy-connection', 'proxy-authenticate', 'transfer-encoding'])

/**
 * Headers with which frameworks (Symfony, Laravel, Rails, IIS, Express's method-override) let a
 * request say it is another method or another path: a token allowed `POST /x/*` could make a
 * backend run a DELETE or route elsewhere. Never forwarded, from trusted peers either.
 */
const REQUEST_REWRITES = new Set(['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url'])

const EMPTY: ReadonlySet<string> = new Set()
/** Fields that must not come in a trailer section (framing, RFC 9110 section 6.5.1) besides the hop-by-hop ones. */
const NOT_TRAILERS = new Set(['content-length', 'host'])
/** The name the gateway gives itself in Via (RFC 9110 section 7.6.3): a pseudonym, never the host name. */
const VIA_NAME = 'portcullis'
/** The X-Request-Id grammar a client's value must match to be kept, as a pattern (docs/forwarding.md). */
export const REQUEST_ID_PATTERN = '^[A-Za-z0-9._-]{1,128}$'
/** REQUEST_ID_PATTERN in words. */
export const REQUEST_ID_SHAPE = '1-128 characters of [A-Za-z0-9._-]'
const REQUEST_ID = new RegExp(REQUEST_ID_PATTERN)

/** The client's X-Request-Id when it matches REQUEST_ID_PATTERN and was sent once, else null. */
export function acceptableRequestId (value: string | string[] | undefined): string | null {
  return typeof value === 'string' && REQUEST_ID.test(value) ? value : null
}

/**
 * The authority the client addressed: `:authority` on HTTP/2 (RFC 9113 section 8.3.1, which plays the
 * role of Host and wins over a Host field sent beside it), else `Host`.
 */
export function requestAuthority (headers: IncomingHttpHeaders): string {
  const authority = headers[':authority']
  if (typeof authority === 'string' && authority !== '') return authority
  return headers.host ?? ''
}

const NONE: readonly string[] = Object.freeze([])
const KEEP_ALIVE: readonly string[] = Object.freeze(['keep-alive'])
const CLOSE: readonly string[] = Object.freeze(['close'])

/** Header names listed in `Connection` (comma-separated, any case), which are hop-by-hop too. */
export function connectionListed (value: string | string[] | undefined): readonly string[] {
  if (value === undefined) return NONE
  // The usual values, answered without splitting (every keep-alive response carries one).
  if (value === 'keep-alive' || value === 'Keep-Alive') return KEEP_ALIVE
  if (value === 'close' || value === 'Close') return CLOSE
  const joined = Array.isArray(value) ? value.join(',') : value
  const names: string[] = []
  for (const part of joined.split(',')) {
    const name = part.trim().toLowerCase()
    if (name !== '') names.push(name)
  }
  return names
}

export interface ForwardContext {
  /** Socket peer address of the client (or of the last proxy). */
  remoteAddress: string
  /** `http` or `https` as seen by the gateway. */
  protocol: string
  /** The Host the client addressed. */
  host: string
  /** TRUST_PROXY is on: client-sent X-Forwarded-* are kept and appended to. */
  trustProxy: boolean
  requestId: string
  /** Token id, once authentication has run. */
  consumerId: string | null
}

/**
 * CGI-style backends (WSGI, Rack, PHP) read `X_Consumer_Id` and `X-Consumer-Id` as the same
 * HTTP_X_CONSUMER_ID, so an underscore spelling of a header the gateway strips or sets would
 * slip past the hyphenated checks. Such spellings are dropped, from trusted peers too.
 */
function underscoreSpoof (name: string): boolean {
  if (!name.includes('_')) return false
  const n = name.replace(/_/g, '-')
  return HOP_BY_HOP.has(n) || n === 'authorization' || n === 'x-request-id' || n === 'x-real-ip' || n === 'forwarded' ||
    n.startsWith('x-consumer-') || n.startsWith('x-forwarded-') || REQUEST_REWRITES.has(n)
}

/**
 * Whether the socket peer is a proxy whose X-Forwarded-* and Forwarded claims are believed, per
 * TRUST_PROXY: a hop count trusts the peer itself, an address list only the peers it contains.
 */
export function peerTrust (trustProxy: boolean | number | string[]): (remoteAddress: string) => boolean {
  if (!Array.isArray(trustProxy)) return () => trustProxy !== false && trustProxy !== 0
  const list = new BlockList()
  for (const entry of trustProxy) {
    const [address = '', bits] = entry.split('/')
    const family = isIPv4(address) ? 'ipv4' : 'ipv6'
    if (bits === undefined) list.addAddress(address, family)
    else list.addSubnet(address, Number(bits), family)
  }
  return (remoteAddress) => (isIPv4(remoteAddress) || isIPv6(remoteAddress)) &&
    list.check(remoteAddress, isIPv4(remoteAddress) ? 'ipv4' : 'ipv6')
}

/**
 * The upstream request headers, made from the client's (`headers`, the copy reply-from prepared):
 * without Authorization, hop-by-hop headers, every header `Connection` names, client-sent
 * X-Consumer-*, method and URL overrides, `Expect`, and (from an untrusted peer) every
 * X-Forwarded-*, Forwarded and X-Real-IP; then X-Forwarded-*, X-Request-Id and X-Consumer-Id set
 * last. A new object, the kept headers in their order: deleting from the copy instead would turn
 * it into a slow dictionary-mode object on every request (Authorization is always there).
 */
export function upstreamRequestHeaders (headers: IncomingHttpHeaders, original: IncomingHttpHeaders, ctx: ForwardContext): IncomingHttpHeaders {
  const listed = connectionListed(original.connection)
  const trusted = ctx.trustProxy
  const out: IncomingHttpHeaders = {}
  for (const name in headers) {
    // Pseudo-headers (RFC 9113 section 8.3) describe this hop's HTTP/2 request; never fields upstream.
    if (name.startsWith(':') || HOP_BY_HOP.has(name) || name === 'authorization' || name.startsWith('x-consumer-') || REQUEST_REWRITES.has(name) ||
      underscoreSpoof(name) || (listed.length > 0 && listed.includes(name)) ||
      // The gateway answers `Expect: 100-continue` itself, once it admitted the request; the upstream
      // client (undici) refuses to send the header at all, which turned such uploads (curl > 1 MB) into 502s.
      name === 'expect' ||
      // An untrusted client could claim any address in these; RFC 7239 Forwarded and X-Real-IP alike.
      // Every other X-Forwarded-* (Port, Prefix, Scheme, Ssl, Server, Uri…) goes too: frameworks
      // build redirects and absolute URLs from them.
      (!trusted && (name.startsWith('x-forwarded-') || name === 'forwarded' || name === 'x-real-ip'))) continue
    out[name] = headers[name]
  }
  const priorFor = trusted ? original['x-forwarded-for'] : undefined
  const priorProto = trusted ? original['x-forwarded-proto'] : undefined
  const priorHost = trusted ? original['x-forwarded-host'] : undefined
  out['x-forwarded-for'] = priorFor === undefined
    ? ctx.remoteAddress
    : `${Array.isArray(priorFor) ? priorFor.join(', ') : priorFor}, ${ctx.remoteAddress}`
  out['x-forwarded-proto'] = typeof priorProto === 'string' && priorProto !== '' ? priorProto : ctx.protocol
  out['x-forwarded-host'] = typeof priorHost === 'string' && priorHost !== '' ? priorHost : ctx.host
  out['x-request-id'] = ctx.requestId
  if (ctx.consumerId !== null) out['x-consumer-id'] = ctx.consumerId
  return out
}

/**
 * Removes hop-by-hop headers (and those the upstream's `Connection` names) from an upstream
 * response, and the headers in `gatewayOwned`, which the gateway sets itself.
 */
export function downstreamResponseHeaders (headers: Record<string, string | string[] | undefined>, gatewayOwned: ReadonlySet<string> = EMPTY): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {}
  const listed = connectionListed(headers.connection)
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || HOP_BY_HOP.has(name) || gatewayOwned.has(name) || (listed.length > 0 && listed.includes(name))) continue
    out[name] = value
  }
  return out
}

const viaHop = (httpVersion: string): string => {
  const major = httpVersion.split('.')[0] ?? '1'
  return `${Number(major) >= 2 ? major : httpVersion} ${VIA_NAME}`
}
const VIA_HOP_11 = viaHop('1.1')

/**
 * `Via` with the gateway's hop appended (RFC 9110 section 7.6.3), after any value already there:
 * `<received-protocol> portcullis`, the protocol being the version the message arrived in
 * (Node's `httpVersion`: `1.0`, `1.1`; HTTP/2 and later are named by their major version alone).
 */
export function appendVia (existing: string | string[] | undefined, httpVersion: string): string {
  const hop = httpVersion === '1.1' ? VIA_HOP_11 : viaHop(httpVersion)
  if (existing === undefined) return hop
  const prior = Array.isArray(existing) ? existing.join(', ') : existing
  return prior.trim() === '' ? hop : `${prior}, ${hop}`
}

/** Whether a response with this status to this method has a body at all (RFC 9110 section 6.4.1). */
export function responseHasBody (statusCode: number, method: string): boolean {
  return method !== 'HEAD' && statusCode >= 200 && statusCode !== 204 && statusCode !== 304
}

/** Whether a field may be forwarded in a trailer section: not hop-by-hop, not framing. */
function trailerAllowed (name: string, gatewayOwned: ReadonlySet<string>): boolean {
  return !HOP_BY_HOP.has(name) && !NOT_TRAILERS.has(name) && !gatewayOwned.has(name)
}

/**
 * The `Trailer` header to give the client, or undefined. Trailers travel only in a chunked
 * body, which the client gets when it speaks HTTP/1.1, the response has a body and the upstream
 * stated no Content-Length (then it sent chunked too); Node refuses the header on anything else.
 */
export function trailerAnnouncement (upstream: Record<string, string | string[] | undefined>, response: { statusCode: number, method: string, httpVersion: string }, gatewayOwned: ReadonlySet<string> = EMPTY): string | undefined {
  if (!responseHasBody(response.statusCode, response.method) || response.httpVersion !== '1.1') return undefined
  if (upstream['content-length'] !== undefined) return undefined
  const listed = upstream.trailer
  const names = (Array.isArray(listed) ? listed.join(',') : listed ?? '').split(',').map((n) => n.trim())
    .filter((name) => name !== '' && trailerAllowed(name.toLowerCase(), gatewayOwned))
  return names.length === 0 ? undefined : names.join(', ')
}

/**
 * The trailer fields as undici received them (name, value, name, value … as bytes) in the shape
 * `forwardableTrailers` takes: names lower-cased, values latin1 (as undici and Node read header
 * bytes), a repeated name becoming a list in its first field's place.
 */
export function trailerFields (raw: readonly Buffer[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1').toLowerCase()
    const value = (raw[i + 1] as Buffer).toString('latin1')
    const prior = out[name]
    out[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value]
  }
  return out
}

/** The upstream's trailer fields that are forwarded, as name/value pairs (a repeated field stays repeated). */
export function forwardableTrailers (trailers: Record<string, string | string[] | undefined>, gatewayOwned: ReadonlySet<string> = EMPTY): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const [name, value] of Object.entries(trailers)) {
    if (value === undefined || !trailerAllowed(name, gatewayOwned)) continue
    for (const v of Array.isArray(value) ? value : [value]) out.push([name, v])
  }
  return out
}
