// The CLI's `--ttl` grammar (docs/tokens.md). Pure.

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
