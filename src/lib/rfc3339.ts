// RFC 3339 instants parsed exactly (to the microsecond, as the limiter script compares them),
// because Date.parse accepts impossible dates such as February 30 and truncates to milliseconds.

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/

/** An instant: microseconds since the epoch and its canonical UTC text. */
export interface Instant {
  us: bigint
  text: string
}

function daysInMonth (year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate()
}

/**
 * Parses an RFC 3339 date-time (`T` separator, `Z` or ±hh:mm offset, 1970–9999, no leap second);
 * digits below the microsecond are dropped. Null when the text is not such an instant.
 */
export function parseRfc3339 (text: string): Instant | null {
  const m = RFC3339.exec(text)
  if (m === null) return null
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null
  if (hour > 23 || minute > 59 || second > 59) return null
  let offsetMinutes = 0
  if (m[8] !== undefined) {
    const oh = Number(m[9])
    const om = Number(m[10])
    if (oh > 23 || om > 59) return null
    offsetMinutes = (m[8] === '-' ? -1 : 1) * (oh * 60 + om)
  }
  const ms = Date.UTC(year, month - 1, day, hour, minute, second) - offsetMinutes * 60_000
  const fraction = BigInt((m[7] ?? '').padEnd(6, '0').slice(0, 6))
  const us = BigInt(ms) * 1000n + fraction
  if (us < 0n) return null
  return { us, text: formatRfc3339(us) }
}

/** Canonical UTC text of an instant: seconds, then milliseconds or microseconds only when non-zero. */
export function formatRfc3339 (us: bigint): string {
  const ms = us / 1000n
  const base = new Date(Number(ms)).toISOString().slice(0, 19)
  const sub = Number(us % 1_000_000n)
  if (sub === 0) return `${base}Z`
  if (sub % 1000 === 0) return `${base}.${String(sub / 1000).padStart(3, '0')}Z`
  return `${base}.${String(sub).padStart(6, '0')}Z`
}
