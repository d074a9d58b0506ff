// allowed_routes patterns of docs/tokens.md: parsed and checked once when a token is written, compiled
// once per routes revision (src/lib/matcher-cache.ts), then matched per request without regular
// expressions.
import { FifoMap } from 'toad-cache'
import { isPcharLiteral } from './path.js'

/**
 * Methods a pattern may name. The RFC 9110 methods plus PATCH: a typo such as `GTE` must be
 * refused at creation, not silently grant nothing.
 */
export const PATTERN_METHODS: ReadonlySet<string> = new Set([
  'GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'
])

/** Longest pattern accepted; a bound keeps stored records and per-request work small. */
export const MAX_PATTERN_LENGTH = 1024

/** A route pattern that cannot be accepted; `pattern` is the text as given. */
export class PatternError extends Error {
  readonly pattern: string
  readonly problem: string

  constructor (pattern: string, problem: string) {
    super(`invalid route pattern ${JSON.stringify(pattern)}: ${problem}`)
    this.name = 'PatternError'
    this.pattern = pattern
    this.problem = problem
  }
}

/** Decides whether a request may use a route; built by compileRoutePatterns. */
export interface RouteMatcher {
  /**
   * True when some pattern covers the method and the already normalised path (no dot segments,
   * no `//`). HEAD is not implied by GET: a pattern must name HEAD (or no method) to allow it.
   */
  allows (method: string, normalisedPath: string): boolean
}

interface CompiledPattern {
  /** Upper-case methods, or null for "any method". */
  methods: ReadonlySet<string> | null
  /** Path segments; the string '*' stands for exactly one non-empty segment. */
  segments: readonly string[]
  /** True when the pattern ended in `/*`: its prefix and everything below it match. */
  prefix: boolean
}

const METHOD_TOKEN = /^[A-Za-z]+$/

/** Parses one pattern; returns the compiled form or the problem as text. */
function parsePattern (p: string): CompiledPattern | string {
  if (p.length === 0) return 'pattern is empty'
  if (p.length > MAX_PATTERN_LENGTH) return `pattern is longer than ${MAX_PATTERN_LENGTH} characters`
  let methods: Set<string> | null = null
  let path = p
  if (!p.startsWith('/')) {
    const space = p.indexOf(' ')
    if (space === -1) return 'must start with "/" or with a method list and one space, e.g. "GET,HEAD /api/v1/users/*"'
    const list = p.slice(0, space)
    path = p.slice(space + 1)
    if (list.length === 0) return 'empty method list'
    methods = new Set()
    for (const token of list.split(',')) {
      if (token.length === 0) return `empty method in list "${list}" (methods are separated by single commas, no spaces)`
      const upper = token.toUpperCase()
      if (!METHOD_TOKEN.test(token) || !PATTERN_METHODS.has(upper)) {
        return `unknown method ${JSON.stringify(token)} (known: ${[...PATTERN_METHODS].join(', ')})`
      }
      methods.add(upper)
    }
    if (!path.startsWith('/')) return 'the path after the method list must start with "/" (exactly one space before it)'
  }
  const charProblem = badCharacter(path)
  if (charProblem !== null) return charProblem
  if (path.includes('//')) return 'contains "//"'
  if (path === '/') return { methods, segments: [], prefix: false }
  const segments = path.slice(1).split('/')
  for (const seg of segments) {
    if (seg === '') return 'ends with "/": write "/a/b" for the path itself or "/a/b/*" for it and everything below'
    const bare = seg.split(';')[0]
    if (bare === '.' || bare === '..') return `contains a "${seg}" segment`
    if (seg.includes('*') && seg !== '*') return `"*" must be a whole segment, not part of "${seg}"`
  }
  const prefix = segments[segments.length - 1] === '*'
  return { methods, segments: prefix ? segments.slice(0, -1) : segments, prefix }
}

/** The first character a pattern path may not contain, described, or null. */
function badCharacter (path: string): string | null {
  for (const ch of path) {
    const code = ch.codePointAt(0) ?? 0
    if (code < 0x20 || code === 0x7f || (code >= 0x80 && code <= 0x9f)) return 'contains a control character'
    if (/\s/u.test(ch)) return 'contains whitespace'
    if (ch === '\\') return 'contains "\\"'
    if (ch === '%') return 'contains "%" (write the decoded path; percent-encoding is not matched)'
    if (ch === '?') return 'contains "?" (query strings are not part of a pattern)'
    if (ch === '#') return 'contains "#"'
    // RFC 3986 pchar without '%': anything else is either refused (docs/tokens.md) or could never equal
    // a segment of a normalised path (non-ASCII stays percent-encoded there).
    if (ch !== '/' && !isPcharLiteral(ch)) return `contains ${JSON.stringify(ch)}, which is not allowed in a path segment`
  }
  return null
}

/** Checks one allowed_routes pattern: null when valid, else the problem in words. */
export function validateRoutePattern (p: string): string | null {
  const r = parsePattern(p)
  return typeof r === 'string' ? r : null
}

/** Splits a normalised path into segments; a trailing slash is ignored (`/a/` is `/a`). */
function splitPath (path: string): string[] | null {
  if (!path.startsWith('/')) return null
  if (path === '/') return []
  const segments = path.slice(1).split('/')
  if (segments[segments.length - 1] === '') segments.pop()
  return segments
}

function matchOne (c: CompiledPattern, method: string, segments: readonly string[]): boolean {
  if (c.methods !== null && !c.methods.has(method)) return false
  const n = c.segments.length
  if (c.prefix ? segments.length < n : segments.length !== n) return false
  for (let i = 0; i < n; i++) {
    const want = c.segments[i]
    const got = segments[i] as string
    if (want === '*' ? got === '' : want !== got) return false
  }
  return true
}

class CompiledMatcher implements RouteMatcher {
  constructor (private readonly patterns: readonly CompiledPattern[]) {}

  allows (method: string, normalisedPath: string): boolean {
    const segments = splitPath(normalisedPath)
    if (segments === null) return false
    const m = method.toUpperCase()
    for (const c of this.patterns) if (matchOne(c, m, segments)) return true
    return false
  }
}

/** Compiles a token's allowed_routes once into a matcher; throws PatternError naming the bad pattern. */
export function compileRoutePatterns (patterns: readonly string[]): RouteMatcher {
  const compiled: CompiledPattern[] = []
  for (const p of patterns) {
    const r = parsePattern(p)
    if (typeof r === 'string') throw new PatternError(p, r)
    compiled.push(r)
  }
  return new CompiledMatcher(compiled)
}

/** Allows nothing: what a corrupt stored allowed_routes compiles to, so a bad record fails closed. */
export const DENY_ALL: RouteMatcher = Object.freeze({ allows: () => false })

/**
 * Compiles a record's allowed_routes JSON text, uncached. A text that is not a JSON array of valid
 * patterns yields DENY_ALL (fail closed).
 */
export function compileRoutesJson (json: string): RouteMatcher {
  try {
    const parsed: unknown = JSON.parse(json)
    if (Array.isArray(parsed) && parsed.every((p): p is string => typeof p === 'string')) {
      return compileRoutePatterns(parsed)
    }
  } catch {
    // DENY_ALL: a record written by another tool must not open routes it fails to describe.
  }
  return DENY_ALL
}

/** Upper bound on cached matchers; distinct allowed_routes texts, not tokens, fill it. */
export const ROUTE_CACHE_MAX = 10_000
const cache = new FifoMap<RouteMatcher>(ROUTE_CACHE_MAX)

/**
 * The matcher for a record's allowed_routes JSON text, compiled once per distinct text (oldest
 * evicted first); as compileRoutesJson otherwise. Used for records without a routes revision,
 * whose text arrives on every request (src/lib/matcher-cache.ts).
 */
export function compiledRoutes (json: string): RouteMatcher {
  const hit = cache.get(json)
  if (hit !== undefined) return hit
  const matcher = compileRoutesJson(json)
  cache.set(json, matcher)
  return matcher
}

/** Empties the compiledRoutes cache (tests and reloads). */
export function clearRouteCache (): void {
  cache.clear()
}

/** Number of entries in the compiledRoutes cache (tests and metrics). */
export function routeCacheSize (): number {
  return cache.size
}
