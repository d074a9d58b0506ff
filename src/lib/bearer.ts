/**
 * Extracting the bearer token (SPEC §5) from the raw header list, because Node keeps only the
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

/** True when the query string carries a credential: `access_token` (RFC 6750 §2.3) or the token itself. */
export function queryCarriesToken (query: string, token: string | null): boolean {
  if (query.length < 2) return false
  const q = query.slice(1)
  for (const pair of q.split('&')) {
    const eq = pair.indexOf('=')
    const name = safeDecode(eq === -1 ? pair : pair.slice(0, eq)).toLowerCase()
    if (name === 'access_token') return true
  }
  return token !== null && (q.includes(token) || safeDecode(q).includes(token))
}

function safeDecode (s: string): string {
  if (!s.includes('%') && !s.includes('+')) return s
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '))
  } catch {
    return s
  }
}
