// The token model of SPEC §3: formats, validation and the Redis hash layout. No I/O here.
import { hash, randomBytes, randomInt } from 'node:crypto'
import { Type, FormatRegistry, type Static, type TSchema, type TInteger } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ValueErrorType } from '@sinclair/typebox/errors'
import { validateRoutePattern, MAX_PATTERN_LENGTH } from './route-patterns.js'
import { parseRfc3339, formatRfc3339 } from './rfc3339.js'

export { parseRfc3339, formatRfc3339 }

// Bounds keep GCRA arithmetic in exact integer microseconds (emission interval ≥ 1 µs).
const MAX_RATE = 1_000_000
const MAX_WINDOW_SECONDS = 31_536_000
const MAX_ROUTES = 100
/** 100 years: far below the 2^52 µs the GCRA script can represent exactly (src/lib/gcra.lua). */
const MAX_REFILL_SECONDS = 3_153_600_000

if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => parseRfc3339(v) !== null)

const Positive = (max: number, description: string): TInteger =>
  Type.Integer({ minimum: 1, maximum: max, description })

const inputProperties = {
  name: Type.Optional(Type.String({
    maxLength: 128,
    // C0, DEL and C1 (NEL included) controls and U+2028/U+2029 end or break a line in some reader
    // of `tokens list` output; bidi embeddings, overrides and isolates (U+202A-U+202E,
    // U+2066-U+2069) reorder the rest of the line a name is shown in ("Trojan Source").
    pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028-\\u202e\\u2066-\\u2069]*$',
    description: 'free text, at most 128 characters, no control characters, line or paragraph separators or bidi overrides'
  })),
  rate_limit: Positive(MAX_RATE, `requests per window: a whole number from 1 to ${MAX_RATE}`),
  burst: Type.Optional(Positive(MAX_RATE, `requests a full bucket admits back to back: a whole number from 1 to ${MAX_RATE} (default rate_limit)`)),
  window_seconds: Type.Optional(Positive(MAX_WINDOW_SECONDS, `the window rate_limit counts in: whole seconds from 1 to ${MAX_WINDOW_SECONDS} (default RATE_LIMIT_WINDOW_SECONDS)`)),
  expires_at: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'an RFC 3339 date-time such as 2027-12-31T23:59:59Z, or null for no expiry'
  })),
  allowed_routes: Type.Array(Type.String({ minLength: 1, maxLength: MAX_PATTERN_LENGTH }), {
    minItems: 1,
    maxItems: MAX_ROUTES,
    description: `a non-empty list (at most ${MAX_ROUTES}) of path patterns such as "/api/v1/users/*" or "GET,HEAD /api/v1/users/*"`
  })
}

/** Body of a create request (CLI flags map onto it; the admin API accepts it as JSON). */
export const TokenInputSchema = Type.Object(inputProperties, { additionalProperties: false })
export type TokenInput = Static<typeof TokenInputSchema>

/** One record of an import file: the seed's shape, `api_key` given. */
export const ImportRecordSchema = Type.Object({
  api_key: Type.String({
    // RFC 6750 b64token, the alphabet a Bearer header can carry (src/lib/bearer.ts).
    pattern: '^(?=.{16,512}$)[A-Za-z0-9._~+/-]+=*$',
    description: '16 to 512 characters of the RFC 6750 token alphabet: A-Z a-z 0-9 - . _ ~ + / (then optional =)'
  }),
  id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: '1 to 64 characters of A-Z a-z 0-9 _ -' })),
  ...inputProperties,
  // Accepted so that `tokens list` output plus an api_key can be imported back; ignored.
  created_at: Type.Optional(Type.String())
}, { additionalProperties: false })
export type ImportRecord = Static<typeof ImportRecordSchema>

const DateTime = Type.String({ format: 'date-time' })
const publicProperties = {
  id: Type.String(),
  name: Type.String(),
  rate_limit: Type.Integer(),
  burst: Type.Integer(),
  window_seconds: Type.Integer(),
  expires_at: Type.Union([DateTime, Type.Null()]),
  allowed_routes: Type.Array(Type.String()),
  created_at: DateTime
}
/** A token as shown by list/show: effective burst and window, never the key. */
export const PublicTokenSchema = Type.Object(publicProperties)
export type PublicToken = Static<typeof PublicTokenSchema>
/** The answer to a create: the public record plus the key, shown this once. */
export const CreatedTokenSchema = Type.Object({ api_key: Type.String(), ...publicProperties })
export type CreatedToken = Static<typeof CreatedTokenSchema>

/** What is stored for a token; absent burst/window mean "default" and stay absent in Redis. */
export interface TokenRecord {
  id: string
  name: string
  rate_limit: number
  burst?: number
  window_seconds?: number
  expires_at?: string
  allowed_routes: string[]
  created_at: string
}

/** Validated create input: `expires_at` normalised to UTC, null turned into absent. */
export type ValidTokenInput = Omit<TokenInput, 'expires_at'> & { expires_at?: string }
/** Validated import record. */
export type ValidImportRecord = Omit<ImportRecord, 'expires_at' | 'created_at'> & { expires_at?: string }
/** Either the typed value or every problem found, in words that never contain an api_key. */
export type Validation<T> = { ok: true, value: T } | { ok: false, problems: string[] }

/** Refused token input; `problems` lists every reason, one per entry. */
export class TokenInputError extends Error {
  readonly problems: string[]
  constructor (problems: string[]) {
    super(problems.length === 1 ? String(problems[0]) : `${problems.length} problems: ${problems.join('; ')}`)
    this.name = 'TokenInputError'
    this.problems = problems
  }
}

const inputCheck = TypeCompiler.Compile(TokenInputSchema)
const importCheck = TypeCompiler.Compile(ImportRecordSchema)
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/

/** A fresh API key: `pc_` and 192 random bits as 32 base64url characters. */
export function generateApiKey (): string {
  return 'pc_' + randomBytes(24).toString('base64url')
}

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
/** A fresh public token id: `tok_` and 12 lowercase base32 characters (60 random bits). */
export function generateTokenId (): string {
  let s = 'tok_'
  for (let i = 0; i < 12; i++) s += ID_ALPHABET[randomInt(32)]
  return s
}

/** True when the text has the shape of a token id (not proof that it exists). */
export function looksLikeTokenId (s: string): boolean {
  return ID_RE.test(s)
}

/** Lowercase hex SHA-256 of an API key: the only form in which a key is stored. */
export function digestApiKey (key: string): string {
  // One-shot hash (Node ≥ 20.12): this runs on every proxied request.
  return hash('sha256', key, 'hex')
}

/** Redis key of a token's record hash; the `{digest}` hash tag keeps a token's keys in one slot. */
export function tokenRecordKey (prefix: string, digest: string): string {
  return `${prefix}{${digest}}:token`
}

/** Redis key of a token's limiter state (written only by the rate-limit script). */
export function tokenLimiterKey (prefix: string, digest: string): string {
  return `${prefix}{${digest}}:gcra`
}

/** Redis key of the id → digest index used by list, show and revoke (a different slot). */
export function tokenIndexKey (prefix: string): string {
  return `${prefix}tokens`
}

/** Turns TypeBox errors into "field: rule" lines, one per field. */
function schemaProblems (errors: Iterable<{ type: ValueErrorType, path: string, message: string, schema: TSchema }>): string[] {
  const seen = new Set<string>()
  const out: string[] = []
  for (const e of errors) {
    if (seen.has(e.path)) continue
    seen.add(e.path)
    const field = e.path === '' ? 'record' : e.path.slice(1).replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.')
    if (e.type === ValueErrorType.ObjectAdditionalProperties) out.push(`${field}: unknown field`)
    else if (e.path === '' && e.type === ValueErrorType.Object) out.push('record: expected a JSON object')
    else if (e.type === ValueErrorType.ObjectRequiredProperty) out.push(`${field}: is required`)
    else out.push(`${field}: ${typeof e.schema.description === 'string' ? 'must be ' + e.schema.description : e.message}`)
  }
  return out
}

/** Checks the parts a schema cannot (patterns, expiry in the past), on whatever parts are readable. */
function semanticProblems (x: unknown, nowMs: number | null): string[] {
  const problems: string[] = []
  const { allowed_routes: routes, expires_at: expires } = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>
  if (Array.isArray(routes)) {
    routes.forEach((p: unknown, i) => {
      // Empty, overlong and non-string entries are the schema's to report.
      if (typeof p !== 'string' || p.length === 0 || p.length > MAX_PATTERN_LENGTH) return
      const problem = validateRoutePattern(p)
      if (problem !== null) problems.push(`allowed_routes[${i}]: invalid route pattern ${JSON.stringify(p)}: ${problem}`)
    })
  }
  const { rate_limit: rate, burst, window_seconds: window } = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>
  if (typeof rate === 'number' && rate >= 1 && typeof window === 'number' && typeof burst === 'number' &&
    burst * window / rate > MAX_REFILL_SECONDS) {
    // The script keeps exact integer µs only below 2^52; such a bucket would answer 503 forever.
    problems.push(`burst: burst × window_seconds / rate_limit (the time to refill a full bucket) must be at most ${MAX_REFILL_SECONDS} s (100 years)`)
  }
  if (typeof expires === 'string' && nowMs !== null) {
    const at = parseRfc3339(expires)
    if (at !== null && at.us <= BigInt(nowMs) * 1000n) problems.push(`expires_at: ${expires} is in the past`)
  }
  return problems
}

function normaliseExpiry<T extends { expires_at?: string | null }> (x: T): Omit<T, 'expires_at'> & { expires_at?: string } {
  const { expires_at: at, ...rest } = x
  if (typeof at !== 'string') return rest
  const parsed = parseRfc3339(at)
  return parsed === null ? rest : { ...rest, expires_at: parsed.text }
}

/** Validates create input (an expiry must lie after nowMs); the typed value or every problem. */
export function validateTokenInput (x: unknown, nowMs: number = Date.now()): Validation<ValidTokenInput> {
  const problems = inputCheck.Check(x) ? [] : schemaProblems(inputCheck.Errors(x))
  problems.push(...semanticProblems(x, nowMs))
  if (problems.length > 0 || !inputCheck.Check(x)) return { ok: false, problems }
  return { ok: true, value: normaliseExpiry(x) }
}

/** Validates one import record; a past expiry is allowed so an operator can expire a token by editing it. */
export function validateImportRecord (x: unknown): Validation<ValidImportRecord> {
  const problems = importCheck.Check(x) ? [] : schemaProblems(importCheck.Errors(x))
  problems.push(...semanticProblems(x, null))
  if (problems.length > 0 || !importCheck.Check(x)) return { ok: false, problems }
  const { created_at: _ignored, ...rest } = x
  return { ok: true, value: normaliseExpiry(rest) }
}

/**
 * Validates a whole import (one object or an array): every record, plus duplicate ids and keys
 * inside it. Problems are labelled "record N" (1-based) and the id when there is one.
 */
export function validateImportList (x: unknown): Validation<ValidImportRecord[]> {
  const list: unknown[] = Array.isArray(x) ? x : [x]
  if (list.length === 0) return { ok: false, problems: ['the import contains no records'] }
  const problems: string[] = []
  const values: ValidImportRecord[] = []
  const ids = new Map<string, number>()
  const digests = new Map<string, number>()
  list.forEach((item, i) => {
    const id = (item as { id?: unknown } | null)?.id
    const label = `record ${i + 1}${typeof id === 'string' && ID_RE.test(id) ? ` (id ${id})` : ''}`
    const r = validateImportRecord(item)
    if (!r.ok) {
      for (const p of r.problems) problems.push(`${label}: ${p}`)
      return
    }
    const v = r.value
    if (v.id !== undefined) {
      const first = ids.get(v.id)
      if (first !== undefined) problems.push(`${label}: id ${v.id} is also used by record ${first}`)
      else ids.set(v.id, i + 1)
    }
    const digest = digestApiKey(v.api_key)
    const firstKey = digests.get(digest)
    if (firstKey !== undefined) problems.push(`${label}: api_key is the same as in record ${firstKey}`)
    else digests.set(digest, i + 1)
    values.push(v)
  })
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: values }
}

/**
 * Parses a CLI `--ttl` such as 30d, 12h, 15m or 45s into milliseconds; null when malformed.
 * Only one whole number and one unit: "1h30m" is refused rather than half understood.
 */
export function parseTtl (text: string): number | null {
  const m = /^([1-9][0-9]{0,9})([smhd])$/.exec(text)
  if (m === null) return null
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd']
  const ms = Number(m[1]) * unit
  // Beyond 100 years an expiry is a typo, and Date stops being exact well before overflow.
  return ms <= 100 * 366 * 86_400_000 ? ms : null
}

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
