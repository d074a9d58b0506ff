// A token record as stored in its Redis hash (docs/tokens.md), written and read back. The field
// names are fixed: src/lib/gcra.lua and src/lib/tunnel-check.lua read them. Pure.
import { hash } from 'node:crypto'
import { formatRfc3339, parseRfc3339 } from '../lib/rfc3339.js'
import type { PublicToken, TokenRecord } from './schema.js'
import { TokenInputError } from './validate.js'

/**
 * The routes revision stored as `routes_rev`: the first 16 hex digits of SHA-256 of the stored
 * allowed_routes JSON text. The rate-limit script sends the routes only when a gateway's compiled
 * revision differs from it, so it must change whenever that text does.
 */
export function routesRevision (allowedRoutesJson: string): string {
  return hash('sha256', allowedRoutesJson, 'hex').slice(0, 16)
}

/** The hash fields stored at tokenRecordKey; absent optional values are not written at all. */
export function toRedisHash (r: TokenRecord): Record<string, string> {
  const routes = JSON.stringify(r.allowed_routes)
  const h: Record<string, string> = {
    id: r.id,
    name: r.name,
    rate_limit: String(r.rate_limit),
    allowed_routes: routes,
    routes_rev: routesRevision(routes),
    created_at: r.created_at
  }
  if (r.burst !== undefined) h.burst = String(r.burst)
  if (r.window_seconds !== undefined) h.window_seconds = String(r.window_seconds)
  if (r.expires_at !== undefined) {
    const at = parseRfc3339(r.expires_at)
    if (at === null) throw new TokenInputError([`expires_at: ${r.expires_at} is not an RFC 3339 date-time`])
    h.expires_at = at.text
    h.expires_at_us = at.us.toString()
  }
  return h
}

const INT_RE = /^[1-9][0-9]{0,15}$/
function posInt (s: string | undefined): number | undefined {
  return s !== undefined && INT_RE.test(s) ? Number(s) : undefined
}

/**
 * Reads a stored hash back (HGETALL result) as the public record, burst and window made
 * effective with the gateway default; null when the hash is empty or not a token record.
 */
export function fromRedisHash (h: Record<string, string>, defaultWindowSeconds: number): PublicToken | null {
  const rate = posInt(h.rate_limit)
  if (h.id === undefined || rate === undefined || h.allowed_routes === undefined) return null
  let routes: unknown
  try { routes = JSON.parse(h.allowed_routes) } catch { return null }
  if (!Array.isArray(routes) || !routes.every((p) => typeof p === 'string')) return null
  return {
    id: h.id,
    name: h.name ?? '',
    rate_limit: rate,
    burst: posInt(h.burst) ?? rate,
    window_seconds: posInt(h.window_seconds) ?? defaultWindowSeconds,
    expires_at: h.expires_at ?? null,
    allowed_routes: routes,
    created_at: h.created_at ?? ''
  }
}

/** The current instant as stored in created_at. */
export function nowRfc3339 (nowMs: number = Date.now()): string {
  return formatRfc3339(BigInt(nowMs) * 1000n)
}
