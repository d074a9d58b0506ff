/**
 * ROUTES: `prefix=url,prefix=url` or a JSON array of
 * `{prefix, upstream, timeoutMs?, circuitFailureThreshold?, circuitCooldownMs?}`.
 * Validated strictly, because a sloppy prefix is an authorisation bug waiting to happen.
 */
import type { RouteConfig } from './route-table.js'
import { ConfigError } from './config-error.js'
import { GATEWAY_PATHS } from './gateway-paths.js'
import { isPcharLiteral } from './path.js'

const fail = (problem: string): never => { throw new ConfigError('ROUTES', problem) }

/** Parses and validates ROUTES; `defaultTimeoutMs` is UPSTREAM_TIMEOUT_MS. */
export function parseRoutes (raw: string, defaultTimeoutMs: number): RouteConfig[] {
  const text = raw.trim()
  const entries = text.startsWith('[') ? fromJson(text) : fromCompact(text)
  if (entries.length === 0) fail('has no routes')
  const routes = entries.map((e, i) => validateRoute(e, i, defaultTimeoutMs))
  const seen = new Set<string>()
  for (const r of routes) {
    if (seen.has(r.prefix)) fail(`lists the prefix ${r.prefix} twice`)
    seen.add(r.prefix)
  }
  return routes
}

interface RawRoute { prefix?: unknown, upstream?: unknown, timeoutMs?: unknown, circuitFailureThreshold?: unknown, circuitCooldownMs?: unknown }

const JSON_FIELDS = ['prefix', 'upstream', 'timeoutMs', 'circuitFailureThreshold', 'circuitCooldownMs']

function fromJson (text: string): RawRoute[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    return fail(`is not valid JSON: ${(err as Error).message}`)
  }
  if (!Array.isArray(parsed)) return fail('must be a JSON array of {"prefix","upstream","timeoutMs"}')
  return parsed.map((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      return fail(`entry ${i + 1} must be an object {"prefix","upstream","timeoutMs"}`)
    }
    const extra = Object.keys(item).filter((k) => !JSON_FIELDS.includes(k))
    if (extra.length > 0) fail(`entry ${i + 1} has unknown field "${extra[0]}"`)
    return item as RawRoute
  })
}

function fromCompact (text: string): RawRoute[] {
  return text.split(',').map((item) => item.trim()).filter((item) => item !== '').map((item) => {
    const eq = item.indexOf('=')
    if (eq <= 0) fail(`entry "${item}" must look like /prefix=http://host:port`)
    return { prefix: item.slice(0, eq).trim(), upstream: item.slice(eq + 1).trim() }
  })
}

function validateRoute (e: RawRoute, i: number, defaultTimeoutMs: number): RouteConfig {
  const where = `entry ${i + 1}`
  if (typeof e.prefix !== 'string') return fail(`${where} needs a string "prefix"`)
  if (typeof e.upstream !== 'string') return fail(`${where} needs a string "upstream"`)
  const prefix = validatePrefix(e.prefix)
  const upstream = validateUpstream(e.upstream, prefix)
  const timeoutMs = e.timeoutMs === undefined
    ? defaultTimeoutMs
    : integerAtLeast(e.timeoutMs, 1, `timeoutMs of ${prefix} must be a positive integer (milliseconds)`)
  const route: RouteConfig = { prefix, upstream, timeoutMs }
  // Breaker overrides stay absent unless given: the proxy falls back to CIRCUIT_* for them.
  if (e.circuitFailureThreshold !== undefined) {
    route.circuitFailureThreshold = integerAtLeast(e.circuitFailureThreshold, 0, `circuitFailureThreshold of ${prefix} must be an integer ≥ 0 (0 = breaker off)`)
  }
  if (e.circuitCooldownMs !== undefined) {
    route.circuitCooldownMs = integerAtLeast(e.circuitCooldownMs, 1, `circuitCooldownMs of ${prefix} must be a positive integer (milliseconds)`)
  }
  return route
}

function integerAtLeast (v: unknown, min: number, problem: string): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min ? v : fail(problem)
}

/** Prefixes are plain, already-normal paths so that matching them is exact. */
function validatePrefix (p: string): string {
  if (!p.startsWith('/')) fail(`prefix "${p}" must start with /`)
  if (![...p].every((ch) => ch === '/' || isPcharLiteral(ch))) fail(`prefix "${p}" may only contain unreserved path characters (no %, ?, #, \\ or spaces)`)
  const trimmed = p.length > 1 ? p.replace(/\/+$/, '') : p
  if (trimmed === '' || trimmed === '/') fail(`prefix "${p}" would cover the gateway's own paths (${GATEWAY_PATHS.join(', ')})`)
  const segments = trimmed.slice(1).split('/')
  if (segments.some((s) => s === '' || s === '.' || s === '..')) fail(`prefix "${p}" has an empty, . or .. segment`)
  for (const own of GATEWAY_PATHS) {
    if (trimmed === own || trimmed.startsWith(own + '/')) fail(`prefix "${p}" overlaps the gateway's own path ${own}`)
  }
  return trimmed
}

/** Upstreams are origins: the path is forwarded unchanged, so a base path would be ambiguous. */
function validateUpstream (raw: string, prefix: string): string {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    return fail(`upstream "${raw}" of ${prefix} is not an absolute URL`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(`upstream "${raw}" of ${prefix} must be http:// or https://`)
  if (u.username !== '' || u.password !== '') fail(`upstream of ${prefix} must not contain credentials`)
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '') {
    fail(`upstream "${raw}" of ${prefix} must be an origin (scheme://host:port) without path, query or fragment`)
  }
  return u.origin
}
