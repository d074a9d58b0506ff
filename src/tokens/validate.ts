// Validation of token input (docs/tokens.md): every problem found, in words that name the field
// and the rule and never quote an api_key. Pure.
import { type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ValueErrorType } from '@sinclair/typebox/errors'
import { validateRoutePattern, MAX_PATTERN_LENGTH } from '../lib/route-patterns.js'
import { parseRfc3339 } from '../lib/rfc3339.js'
import { ImportRecordSchema, MAX_REFILL_SECONDS, TokenInputSchema, type ImportRecord, type TokenInput } from './schema.js'
import { looksLikeTokenId } from './ids.js'
import { digestApiKey } from './keys.js'

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
    const label = `record ${i + 1}${typeof id === 'string' && looksLikeTokenId(id) ? ` (id ${id})` : ''}`
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
