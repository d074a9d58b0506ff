/**
 * The log lines' `"time"` field, as pino's `stdTimeFunctions.isoTime` writes it
 * (`,"time":"2026-01-02T03:04:05.678Z"`), without a Date and a toISOString per line: the part up to
 * the seconds is formatted once per second and the milliseconds appended (docs/performance.md).
 */

let cachedSecond = Number.NaN
let cachedHead = '' // `,"time":"2026-01-02T03:04:05.`

/** The `,"time":"…"` field for `now` (milliseconds since the epoch), exactly as `new Date(now).toISOString()` reads. */
export function isoTimeField (now: number = Date.now()): string {
  const second = Math.floor(now / 1000)
  if (second !== cachedSecond) {
    const iso = new Date(second * 1000).toISOString() // `…:05.000Z`: keep all up to the dot
    cachedHead = ',"time":"' + iso.slice(0, iso.length - 4)
    cachedSecond = second
  }
  const ms = now - second * 1000
  return cachedHead + (ms < 10 ? '00' : ms < 100 ? '0' : '') + String(ms) + 'Z"'
}
