/**
 * The fields of the per-request log line as JSON text, built by concatenation in a fixed order:
 * the same bytes pino writes for the same object (an undefined field is left out, a null written,
 * a non-finite number written as null), at a fraction of its cost (docs/performance.md).
 */

/** One request line's fields, in the order they are written. */
export interface RequestLine {
  reqId: string
  method: string
  path: string | null | undefined
  route: string | null
  status: number
  code: string | undefined
  remoteAddress: string | undefined
  listener: string | undefined
  ms: number
  consumer: string | undefined
  rateLimit: string | undefined
  upstreamFailure: string | undefined
}

/** The keys of RequestLine, in the order requestLineProps writes them. */
export const REQUEST_LINE_KEYS: ReadonlyArray<keyof RequestLine> = [
  'reqId', 'method', 'path', 'route', 'status', 'code', 'remoteAddress', 'listener', 'ms', 'consumer', 'rateLimit', 'upstreamFailure'
]

/**
 * `s` as a JSON string, as JSON.stringify writes it. The usual strings (no quote, backslash,
 * control character or surrogate) are only quoted; the others go through JSON.stringify, which
 * escapes a lone surrogate as `\udxxx` (well-formed JSON.stringify, as pino gets it too).
 */
export function jsonString (s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s)
  }
  return '"' + s + '"'
}

/**
 * `v` as JSON writes a number (non-finite: null). A duration rounded to hundredths (`1.23`) is
 * written from its integer hundredths: String() of a fraction costs ~100 ns, a tenth of the line.
 * Exact: below 1e15 hundredths, `h / 100` is the double nearest the decimal, which String() writes
 * as that decimal.
 */
export function jsonNumber (v: number): string {
  const h = Math.round(v * 100)
  if (h >= 0 && h < 1e15 && h / 100 === v) {
    const int = Math.floor(h / 100)
    const frac = h - int * 100
    if (frac === 0) return String(int)
    if (frac % 10 === 0) return String(int) + '.' + String(frac / 10)
    return String(int) + (frac < 10 ? '.0' : '.') + String(frac)
  }
  return Number.isFinite(v) ? String(v) : 'null'
}

/** `,"key":value` for one field, or '' when it is undefined. */
function prop (head: string, v: string | number | null | undefined): string {
  if (v === undefined) return ''
  if (typeof v === 'string') return head + jsonString(v)
  if (typeof v === 'number') return head + jsonNumber(v)
  return head + 'null'
}

/** The line's fields as JSON members, each with a leading comma: `,"reqId":"…","method":"GET",…`. */
export function requestLineProps (f: RequestLine): string {
  return prop(',"reqId":', f.reqId) +
    prop(',"method":', f.method) +
    prop(',"path":', f.path) +
    prop(',"route":', f.route) +
    prop(',"status":', f.status) +
    prop(',"code":', f.code) +
    prop(',"remoteAddress":', f.remoteAddress) +
    prop(',"listener":', f.listener) +
    prop(',"ms":', f.ms) +
    prop(',"consumer":', f.consumer) +
    prop(',"rateLimit":', f.rateLimit) +
    prop(',"upstreamFailure":', f.upstreamFailure)
}
