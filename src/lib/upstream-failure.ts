/**
 * Upstream failures (docs/forwarding.md): their kinds, how an error reported by undici,
 * reply-from or node:http is classified, and the gateway's answer for each kind. Pure; used by the
 * proxy (routes/upstream-exchange.ts) and the WebSocket route (routes/websocket.ts) alike.
 */
import { upstreamError, upstreamTimeout, type GatewayError } from './errors.js'

/** Kinds of upstream failure, used in logs and metric labels (a small fixed set); `pool`: no pooled connection became free in time. */
export type UpstreamFailureKind = 'timeout' | 'refused' | 'reset' | 'dns' | 'tls' | 'protocol' | 'pool'

/** The kinds an error can be classified as (`pool` is the exchange's own verdict). */
export type ClassifiedFailure = Exclude<UpstreamFailureKind, 'pool'>

/** Classifies an error reported by reply-from/undici (or node:http for WebSocket upgrades). */
export function classifyUpstreamError (err: Error & { code?: string, cause?: unknown }): ClassifiedFailure {
  const code = (err.cause as { code?: string } | undefined)?.code ?? err.code ?? ''
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT' ||
    code === 'FST_REPLY_FROM_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'PORTCULLIS_UPSTREAM_BODY_TIMEOUT') return 'timeout'
  if (code === 'ECONNREFUSED') return 'refused'
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return 'reset'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'dns'
  // OpenSSL's verification codes: ERR_TLS_CERT_ALTNAME_INVALID, CERT_HAS_EXPIRED,
  // DEPTH_ZERO_SELF_SIGNED_CERT, UNABLE_TO_VERIFY_LEAF_SIGNATURE (an incomplete chain) …
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code.includes('SELF_SIGNED') || code.includes('VERIFY')) return 'tls'
  return 'protocol'
}

/** What a 502 UPSTREAM_ERROR says for each kind of failure. */
export const FAILURE_TEXT: Record<Exclude<ClassifiedFailure, 'timeout'>, string> = {
  refused: 'refused the connection',
  reset: 'reset the connection',
  dns: 'host could not be resolved',
  tls: 'TLS certificate could not be verified',
  protocol: 'answered with something that is not valid HTTP'
}

/** The answer for a classified failure: 504 UPSTREAM_TIMEOUT naming the route's timeout, else 502 UPSTREAM_ERROR. */
export function upstreamFailureAnswer (kind: ClassifiedFailure, timeoutMs: number): GatewayError {
  return kind === 'timeout' ? upstreamTimeout(timeoutMs) : upstreamError(FAILURE_TEXT[kind])
}
