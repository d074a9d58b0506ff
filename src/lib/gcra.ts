import { readFileSync } from 'node:fs'

/** The Lua source, read once at import from gcra.lua next to this module. */
export const GCRA_SCRIPT: string = readFileSync(new URL('./gcra.lua', import.meta.url), 'utf8')

/** Command name for ioredis `defineCommand` (numberOfKeys: 2), which retries EVALSHA as EVAL on NOSCRIPT. */
export const GCRA_COMMAND = 'portcullisGate'

export type GateResult =
  | { status: 'unknown' }
  | { status: 'expired', id: string }
  | {
    status: 'allowed' | 'limited'
    id: string
    /**
     * JSON array text of the token's route patterns, parsed by the caller; null when the stored
     * revision is the one the caller passed (its compiled copy is current, so nothing was sent).
     */
    allowedRoutes: string | null
    /** The stored routes revision (src/tokens/record.ts routesRevision), '' for a record without one. */
    routesRev: string
    burst: number
    /** Seconds the policy takes to refill a full bucket. */
    policyWindow: number
    remaining: number
    /** Allowed: seconds until the bucket is full. Limited: seconds until a retry can pass (= Retry-After). */
    resetSeconds: number
  }

/** A result that reached the limiter (the token was valid). */
export type GateDecision = Extract<GateResult, { status: 'allowed' | 'limited' }>

/** The fields the rate-limit headers are made from. */
export type RateLimitState = Pick<GateDecision, 'burst' | 'policyWindow' | 'remaining' | 'resetSeconds'>

const ROUTES_REV = /^(?:[0-9a-f]{16})?$/

function malformed (raw: unknown, why: string): Error {
  let shown: string
  try { shown = JSON.stringify(raw) ?? String(raw) } catch { shown = String(raw) }
  return new Error(`malformed ${GCRA_COMMAND} reply (${why}): ${shown.slice(0, 200)}`)
}

function count (raw: unknown, v: unknown, name: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw malformed(raw, `${name} is not an integer >= ${min}`)
  return v
}

/**
 * Decodes the script's raw reply to a call made with `knownRev` as ARGV[3]; throws on a malformed
 * reply, including "routes unchanged" for a revision other than `knownRev`.
 */
export function decodeGateReply (raw: unknown, knownRev = ''): GateResult {
  if (typeof raw === 'string') return decodeCompactDecision(raw, knownRev)
  // A reply we cannot read must surface as an error (503), never as a decision (401 or a pass).
  if (!Array.isArray(raw) || raw.length === 0) throw malformed(raw, 'not a non-empty array')
  const [code, id, routes, rev, burst, w, remaining, t] = raw as unknown[]
  const want = code === 0 ? 1 : code === 1 ? 2 : code === 2 || code === 3 ? 8 : -1
  if (want === -1) throw malformed(raw, 'unknown status code')
  if (raw.length !== want) throw malformed(raw, `expected ${want} elements`)
  if (code === 0) return { status: 'unknown' }
  if (typeof id !== 'string' || id === '') throw malformed(raw, 'id is not a non-empty string')
  if (code === 1) return { status: 'expired', id }
  if (typeof routes !== 'string') throw malformed(raw, 'allowed_routes is not a string')
  if (typeof rev !== 'string' || !ROUTES_REV.test(rev)) throw malformed(raw, 'routes_rev is not empty or 16 hex digits')
  // "Unchanged" must name the very revision the caller holds, else it would match with routes it never saw.
  if (routes === '' && (rev === '' || rev !== knownRev)) throw malformed(raw, 'routes unchanged from a revision the caller does not hold')
  return {
    status: code === 2 ? 'allowed' : 'limited',
    id,
    allowedRoutes: routes === '' ? null : routes,
    routesRev: rev,
    burst: count(raw, burst, 'burst', 1),
    policyWindow: count(raw, w, 'policy window', 1),
    remaining: count(raw, remaining, 'remaining', 0),
    resetSeconds: count(raw, t, 'reset seconds', code === 3 ? 1 : 0)
  }
}

/** A whole number of at least `min` in decimal digits, as the script's %d writes it. */
function digits (raw: string, from: number, to: number, name: string, min: number): number {
  if (to <= from || to - from > 16) throw malformed(raw, `${name} is not an integer >= ${min}`)
  let n = 0
  for (let i = from; i < to; i++) {
    const d = raw.charCodeAt(i) - 48
    if (d < 0 || d > 9) throw malformed(raw, `${name} is not an integer >= ${min}`)
    n = n * 10 + d
  }
  if (!Number.isSafeInteger(n) || n < min) throw malformed(raw, `${name} is not an integer >= ${min}`)
  return n
}

/**
 * The script's decision with the routes unchanged: 'code,rev,burst,w,remaining,t,id' (src/lib/gcra.lua).
 * It is only ever sent for the very revision the caller holds, so it must name that one.
 */
function decodeCompactDecision (raw: string, knownRev: string): GateResult {
  const cuts: number[] = []
  let at = -1
  for (let k = 0; k < 6; k++) {
    at = raw.indexOf(',', at + 1)
    if (at === -1) throw malformed(raw, 'a decision string has 7 comma-separated parts')
    cuts.push(at)
  }
  const [c1, c2, c3, c4, c5, c6] = cuts as [number, number, number, number, number, number]
  const code = raw.slice(0, c1)
  if (code !== '2' && code !== '3') throw malformed(raw, 'unknown status code')
  const rev = raw.slice(c1 + 1, c2)
  if (rev === '' || rev !== knownRev || !ROUTES_REV.test(rev)) throw malformed(raw, 'routes unchanged from a revision the caller does not hold')
  const id = raw.slice(c6 + 1)
  if (id === '') throw malformed(raw, 'id is not a non-empty string')
  return {
    status: code === '2' ? 'allowed' : 'limited',
    id,
    allowedRoutes: null,
    routesRev: rev,
    burst: digits(raw, c2 + 1, c3, 'burst', 1),
    policyWindow: digits(raw, c3 + 1, c4, 'policy window', 1),
    remaining: digits(raw, c4 + 1, c5, 'remaining', 0),
    resetSeconds: digits(raw, c5 + 1, c6, 'reset seconds', code === '3' ? 1 : 0)
  }
}

/** Header values of draft-ietf-httpapi-ratelimit-headers-11 for an allowed or limited result. */
export function rateLimitHeaders (r: RateLimitState): { 'ratelimit-policy': string, ratelimit: string } {
  return {
    'ratelimit-policy': `"default";q=${r.burst};w=${r.policyWindow}`,
    ratelimit: `"default";r=${r.remaining};t=${r.resetSeconds}`
  }
}
