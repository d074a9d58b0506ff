// The token model's shapes (docs/tokens.md): what a create request, an import record and a
// shown token look like, as TypeBox schemas shared by the CLI, the admin API and OpenAPI.
import { Type, FormatRegistry, type Static, type TInteger } from '@sinclair/typebox'
import { MAX_PATTERN_LENGTH } from '../lib/route-patterns.js'
import { parseRfc3339 } from '../lib/rfc3339.js'
import { TOKEN_ID_PATTERN, TOKEN_ID_SHAPE } from './ids.js'

// Bounds keep GCRA arithmetic in exact integer microseconds (emission interval ≥ 1 µs).
const MAX_RATE = 1_000_000
const MAX_WINDOW_SECONDS = 31_536_000
const MAX_ROUTES = 100
/** 100 years: far below the 2^52 µs the GCRA script can represent exactly (src/lib/gcra.lua). */
export const MAX_REFILL_SECONDS = 3_153_600_000

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

/** One record of an import file: a create request plus `api_key` and optionally `id`. */
export const ImportRecordSchema = Type.Object({
  api_key: Type.String({
    // RFC 6750 b64token, the alphabet a Bearer header can carry (src/lib/bearer.ts).
    pattern: '^(?=.{16,512}$)[A-Za-z0-9._~+/-]+=*$',
    description: '16 to 512 characters of the RFC 6750 token alphabet: A-Z a-z 0-9 - . _ ~ + / (then optional =)'
  }),
  id: Type.Optional(Type.String({ pattern: TOKEN_ID_PATTERN, description: TOKEN_ID_SHAPE })),
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
