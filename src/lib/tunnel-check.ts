import { readFileSync } from 'node:fs'

/** The Lua source of the tunnel re-check, read once at import from tunnel-check.lua. */
export const TUNNEL_CHECK_SCRIPT: string = readFileSync(new URL('./tunnel-check.lua', import.meta.url), 'utf8')

/** Command name for ioredis `defineCommand` (numberOfKeys: 1). */
export const TUNNEL_CHECK_COMMAND = 'portcullisTunnelCheck'

/** What the re-check found: routes are the allowed_routes JSON text when they changed. */
export type TunnelCheck =
  | { status: 'unknown' }
  | { status: 'expired' }
  | { status: 'unchanged' }
  | { status: 'changed', routes: string, routesRev: string }

/** Decodes the script's reply; throws on anything else (the caller treats that like a Redis error). */
export function decodeTunnelCheck (raw: unknown): TunnelCheck {
  if (!Array.isArray(raw)) throw new Error('malformed tunnel check reply: not an array')
  const [code, routes, rev] = raw as unknown[]
  if (code === 0 && raw.length === 1) return { status: 'unknown' }
  if (code === 1 && raw.length === 1) return { status: 'expired' }
  if (code === 2 && raw.length === 1) return { status: 'unchanged' }
  if (code === 3 && raw.length === 3 && typeof routes === 'string' && typeof rev === 'string') {
    return { status: 'changed', routes, routesRev: rev }
  }
  throw new Error('malformed tunnel check reply')
}
