// Request-target normalisation (docs/forwarding.md). The gateway authorises and forwards the
// same string, so every input that a lenient backend could read as a different path is refused
// here rather than "repaired": the gateway and the upstream must never disagree about the path.

export type NormalisedTarget = { ok: true, path: string, query: string } | { ok: false, reason: string }

const SLASH = 0x2f
const PERCENT = 0x25
const SEMICOLON = 0x3b
const DOT = 0x2e
const MAX_ECHO = 32

// ALPHA DIGIT - . _ ~ : decoding these never changes what any backend sees.
const UNRESERVED_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~'
// RFC 3986 pchar without pct-encoded (unreserved, sub-delims, ":" and "@"): the characters a path
// segment may carry literally. The one spelling of it: route patterns and prefixes use isPcharLiteral.
const PCHAR_LITERALS = UNRESERVED_CHARS + "!$&'()*+,;=:@"
const UNRESERVED = charTable(UNRESERVED_CHARS)
const PCHAR = charTable(PCHAR_LITERALS)
const HEX = '0123456789ABCDEF'
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

class PathRejection extends Error {}

/** Normalises a raw HTTP request-target (req.url) into the exact path the gateway authorises and forwards. */
export function normaliseTarget (rawTarget: string): NormalisedTarget {
  try {
    checkOriginForm(rawTarget)
    const q = rawTarget.indexOf('?')
    const path = q === -1 ? rawTarget : rawTarget.slice(0, q)
    const query = q === -1 ? '' : rawTarget.slice(q)
    checkQuery(query)
    const normal = isAlreadyNormal(path) ? path : normalisePath(path)
    checkForwardable(normal)
    return { ok: true, path: normal, query }
  } catch (err) {
    if (err instanceof PathRejection) return { ok: false, reason: err.message }
    throw err
  }
}

function reject (reason: string): never {
  throw new PathRejection(reason)
}

/** Caps the part of the client's input echoed into an error message. */
function excerpt (s: string): string {
  return JSON.stringify(s.length > MAX_ECHO ? s.slice(0, MAX_ECHO) + '...' : s)
}

/**
 * Only origin-form is accepted: absolute-form would let the client pick a host the routing never
 * saw, `*` and authority-form are not paths, and a `#` is never sent by a correct client while
 * backends disagree on whether it ends the path.
 */
function checkOriginForm (target: string): void {
  if (target.charCodeAt(0) !== SLASH) reject('the request target must be a path starting with "/"')
  if (target.includes('#')) reject('a fragment ("#") is not allowed in a request target')
}

/**
 * A name that starts with `..` ("...", "..a") or ends with `..` before another segment ("b../c") is
 * not a dot segment, but reading `/..` or `../` in it is exactly the slip a lenient parser makes,
 * and the upstream client (reply-from) refuses such URLs outright. Refused, not forwarded.
 */
function checkForwardable (path: string): void {
  if (path.includes('/..') || path.includes('../')) reject('a segment starting with ".." (or ending with ".." before another segment)')
}

/**
 * The query is forwarded byte for byte, so it may not carry what ends a request line or a header
 * (space, CR, LF, other controls) on its way upstream.
 */
function checkQuery (query: string): void {
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f) reject('space or control character in the query string')
  }
}

/**
 * The per-request fast path: literal pchars only, no `%`, no `//`, no segment that is or becomes
 * a dot segment. Such a path is its own normal form, so nothing is allocated.
 */
function isAlreadyNormal (path: string): boolean {
  let segStart = 1
  let paramStart = -1
  for (let i = 1; i <= path.length; i++) {
    const c = i === path.length ? SLASH : path.charCodeAt(i)
    if (c === SLASH) {
      const nameEnd = paramStart === -1 ? i : paramStart
      if (nameEnd === segStart && (i !== path.length || paramStart !== -1)) return false
      if (isDotName(path, segStart, nameEnd)) return false
      segStart = i + 1
      paramStart = -1
    } else if (c === SEMICOLON) {
      if (paramStart === -1) paramStart = i
    } else if (c >= 128 || PCHAR[c] !== 1) {
      return false
    }
  }
  return true
}

function isDotName (s: string, start: number, end: number): boolean {
  const len = end - start
  if (len === 1) return s.charCodeAt(start) === DOT
  return len === 2 && s.charCodeAt(start) === DOT && s.charCodeAt(start + 1) === DOT
}

function normalisePath (path: string): string {
  checkRawChars(path)
  const raw = path.split('/')
  const stack: string[] = []
  let last = ''
  for (let i = 1; i < raw.length; i++) {
    last = canonicaliseSegment(raw[i] ?? '')
    checkParameterDotSegment(last)
    if (last === '..') {
      if (stack.length === 0) reject('".." climbs above the root')
      stack.pop()
    } else if (last !== '' && last !== '.') {
      stack.push(last)
    }
  }
  if (stack.length === 0) return '/'
  // RFC 3986 remove_dot_segments: `/a/b/`, `/a/b/.` and `/a/b/..` all keep their final slash.
  const trailing = last === '' || last === '.' || last === '..'
  return '/' + stack.join('/') + (trailing ? '/' : '')
}

/**
 * A literal `\` is a separator to Windows-flavoured servers and to some URL parsers; raw
 * controls, spaces and non-ASCII are not valid in a request-target and each parser repairs them
 * its own way (Node may hand high bytes through as latin1).
 */
function checkRawChars (path: string): void {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c === 0x5c) reject('backslash ("\\") in path')
    if (c < 0x20 || c === 0x7f) reject(`control character 0x${hex(c)} in path`)
    if (c === 0x20) reject('space in path')
    if (c > 0x7e) reject('non-ASCII character in path (percent-encode it as UTF-8)')
  }
}

/** One segment in canonical form: unreserved escapes decoded, every other escape uppercase. */
function canonicaliseSegment (seg: string): string {
  let out = ''
  let i = 0
  while (i < seg.length) {
    const c = seg.charCodeAt(i)
    if (c !== PERCENT) {
      // Only `"<>[]^`{|}` reach here unencoded: pass them on encoded so the forwarded path is
      // valid RFC 3986 and every backend parses it alike.
      out += PCHAR[c] === 1 ? seg.charAt(i) : '%' + hex(c)
      i++
    } else if (readEscape(seg, i) >= 0x80) {
      let end = i
      while (seg.charCodeAt(end) === PERCENT && readEscape(seg, end) >= 0x80) end += 3
      out += canonicaliseUtf8Run(seg.slice(i, end))
      i = end
    } else {
      out += canonicaliseAsciiEscape(readEscape(seg, i))
      i += 3
    }
  }
  checkDoubleEncoding(out)
  return out
}

/** A `%` not followed by two hex digits is repaired differently by every parser (or not at all). */
function readEscape (s: string, i: number): number {
  const hi = hexValue(s.charCodeAt(i + 1))
  const lo = hexValue(s.charCodeAt(i + 2))
  if (hi === -1 || lo === -1) reject(`invalid percent-encoding ${excerpt(s.slice(i, i + 3))}`)
  return hi * 16 + lo
}

/**
 * Encoded `/` and `\` become separators in a backend that decodes before routing, and NUL or
 * controls truncate or split paths in C backends and logs; none has a safe canonical form.
 */
function canonicaliseAsciiEscape (byte: number): string {
  if (UNRESERVED[byte] === 1) return String.fromCharCode(byte)
  if (byte === SLASH) reject('encoded "/" (%2F) in path')
  if (byte === 0x5c) reject('encoded "\\" (%5C) in path')
  if (byte < 0x20 || byte === 0x7f) reject(`encoded control character %${hex(byte)} in path`)
  return '%' + hex(byte)
}

/**
 * Invalid or overlong UTF-8 (`%C0%AE`) is read as `.` by some decoders, and a backend that
 * applies NFKC turns full-width dots and solidi (`%EF%BC%8E`, U+2024) into real ones.
 */
function canonicaliseUtf8Run (run: string): string {
  const bytes = new Uint8Array(run.length / 3)
  for (let b = 0; b < bytes.length; b++) bytes[b] = readEscape(run, b * 3)
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return reject(`invalid UTF-8 in percent-encoding ${excerpt(run)}`)
  }
  if (/[./\\]/.test(text.normalize('NFKC'))) {
    reject(`percent-encoded character that normalises to ".", "/" or "\\": ${excerpt(run)}`)
  }
  return run.toUpperCase()
}

/**
 * `%25` followed by two hex digits (`%252e`) turns into a new escape in any backend that decodes
 * once more, so the path it routes on differs from the one authorised. Checked on the canonical
 * segment, so `%25%32%65` (decoded to `%252e`) is caught too.
 */
function checkDoubleEncoding (seg: string): void {
  for (let i = seg.indexOf('%25'); i !== -1; i = seg.indexOf('%25', i + 3)) {
    if (hexValue(seg.charCodeAt(i + 3)) !== -1 && hexValue(seg.charCodeAt(i + 4)) !== -1) {
      reject(`double percent-encoding ${excerpt(seg.slice(i, i + 5))}`)
    }
  }
}

/**
 * Servlet containers strip `;` parameters before resolving dot segments, so `..;x` climbs in
 * Tomcat while it is a plain name here; `;x` alone becomes an empty segment there.
 */
function checkParameterDotSegment (seg: string): void {
  if (seg === '.' || seg === '..') return
  let nameEnd = seg.length
  const semi = seg.indexOf(';')
  if (semi !== -1) nameEnd = semi
  const encodedSemi = seg.indexOf('%3B')
  if (encodedSemi !== -1 && encodedSemi < nameEnd) nameEnd = encodedSemi
  const name = seg.slice(0, nameEnd)
  if (name === '.' || name === '..') {
    reject(`segment ${excerpt(seg)} is a dot segment once its ";" parameters are removed`)
  }
  if (name === '' && seg !== '') {
    reject(`segment ${excerpt(seg)} is empty once its ";" parameters are removed`)
  }
}

/** True when `ch` is one character of PCHAR_LITERALS. */
export function isPcharLiteral (ch: string): boolean {
  return ch.length === 1 && PCHAR[ch.charCodeAt(0)] === 1
}

function charTable (chars: string): Uint8Array {
  const table = new Uint8Array(128)
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1
  return table
}

function hexValue (c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1
}

function hex (byte: number): string {
  return HEX.charAt(byte >> 4) + HEX.charAt(byte & 15)
}
