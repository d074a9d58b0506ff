/**
 * Extracting the bearer token (docs/reference.md) from the raw header list, because Node keeps only the
 * first of duplicate Authorization headers in `req.headers` and a second one must be refused.
 */

/** RFC 6750 b64token; the same alphabet API keys are restricted to at import. */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
const MAX_TOKEN = 512

export type BearerResult =
  | { ok: true, token: string }
  | { ok: false, missing: true }
  | { ok: false, missing: false, problem: string }

/** Finds exactly one `Authorization: Bearer <token>` in Node's rawHeaders (name/value pairs). */
export function bearerToken (rawHeaders: readonly string[]): BearerResult {
  let value: string | null = null
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length !== 13 || name.toLowerCase() !== 'authorization') continue
    if (value !== null) return { ok: false, missing: false, problem: 'more than one Authorization header' }
    value = rawHeaders[i + 1] ?? ''
  }
  if (value === null) return { ok: false, missing: true }
  return parseBearer(value)
}

/** Parses one Authorization value: scheme `Bearer` in any case, one or more spaces, one token. */
export function parseBearer (value: string): BearerResult {
  const sp = value.indexOf(' ')
  if (sp === -1 || value.slice(0, sp).toLowerCase() !== 'bearer') {
    return { ok: false, missing: false, problem: 'the Authorization scheme must be Bearer' }
  }
  let start = sp
  while (value.charCodeAt(start) === 0x20) start++
  const token = value.slice(start)
  if (token === '') return { ok: false, missing: false, problem: 'the bearer token is empty' }
  if (token.length > MAX_TOKEN) return { ok: false, missing: false, problem: 'the bearer token is too long' }
  // A comma means a joined list of credentials, a space a second token: both ambiguous, refused.
  if (!TOKEN.test(token)) return { ok: false, missing: false, problem: 'the bearer token must be a single token of RFC 6750 characters' }
  return { ok: true, token }
}

/** What separates parameters: `&`, and `;`, which older Java, Perl and Python servers also split on. */
const SEPARATORS = /[&;]/
/** Rounds of percent-decoding looked through: a backend that decodes twice must find no credential either. */
const DECODE_ROUNDS = 3
/** Below this length a token without its `=` padding is too short to search for on its own. */
const MIN_UNPADDED = 16
const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g

/**
 * True when the query string carries a credential: a parameter named `access_token` (RFC 6750
 * section 2.3) or the token itself anywhere in it. Each parameter is decoded on its own and leniently
 * (a stray `%` elsewhere must not hide an encoded token), read raw, percent-decoded and with `+`
 * as a space, the way the various upstream frameworks would read it.
 */
export function queryCarriesToken (query: string, token: string | null): boolean {
  if (query.length < 2) return false
  const needles = token === null ? [] : tokenForms(token)
  for (const pair of query.slice(1).split(SEPARATORS)) {
    if (pair === '') continue
    // Tokens contain neither `&` nor `;`, so one parameter holds the whole of any copy.
    for (const text of readings(pair)) if (needles.some((n) => text.includes(n))) return true
    const eq = pair.indexOf('=')
    for (const name of readings(eq === -1 ? pair : pair.slice(0, eq))) {
      // A decoded separator in a name is a separator to a backend that decodes before splitting.
      if (name.split(SEPARATORS).some(isAccessTokenName)) return true
    }
  }
  return false
}

/** The token, and without its base64 padding when that is still long enough to be unambiguous. */
function tokenForms (token: string): string[] {
  const unpadded = token.replace(/=+$/, '')
  return unpadded !== token && unpadded.length >= MIN_UNPADDED ? [unpadded] : [token]
}

/** The text as sent, then each round of lenient percent-decoding, also with `+` read as a space. */
function readings (s: string): string[] {
  const out = [s]
  if (s.includes('%')) decodeRounds(s, out)
  if (s.includes('+')) {
    const spaced = s.replace(/\+/g, ' ')
    out.push(spaced)
    decodeRounds(spaced, out)
  }
  return out
}

function decodeRounds (s: string, out: string[]): void {
  let current = s
  for (let i = 0; i < DECODE_ROUNDS && current.includes('%'); i++) {
    const next = current.replace(ESCAPE_RUN, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'))
    if (next === current) return
    out.push(next)
    current = next
  }
}

/**
 * `access_token` as some backend would read the name: in any case (also by Unicode case mapping:
 * Java's equalsIgnoreCase takes `ſ` for `s`), trimmed, cut at a NUL (C) or at `[` (PHP arrays),
 * with `.` and spaces read as `_` (PHP).
 */
function isAccessTokenName (name: string): boolean {
  const cut = name.search(/[\0[=]/)
  const s = (cut === -1 ? name : name.slice(0, cut)).trim().replace(/[. ]/g, '_')
  return s.toLowerCase() === 'access_token' || s.toUpperCase() === 'ACCESS_TOKEN'
}
