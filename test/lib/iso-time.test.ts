import { test } from 'tap'
import { isoTimeField } from '../../src/lib/iso-time.js'

const want = (now: number): string => ',"time":"' + new Date(now).toISOString() + '"'

test('the time field reads exactly as toISOString, across seconds and clock steps', async (t) => {
  const base = Date.UTC(2026, 0, 2, 3, 4, 5)
  const times = [
    base, base + 1, base + 9, base + 10, base + 99, base + 100, base + 999, base + 1000, base + 1001,
    base - 1, base + 999, base + 1000, // back and forth over one second boundary: the cache follows
    base + 60_000 * 60 * 24 * 366, // a year later, same millisecond
    0, 999, 1000, -1, -1000, -1001, // the epoch and before it
    Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1),
    Date.UTC(10000, 0, 1, 0, 0, 0, 7) // a six-digit year, `+010000-…`
  ]
  for (const now of times) t.equal(isoTimeField(now), want(now), String(now))
  let bad = 0
  for (let i = 0, now = base; i < 20_000; i++, now += 1 + Math.floor(Math.random() * 400)) if (isoTimeField(now) !== want(now)) bad++
  t.equal(bad, 0, 'a walk through 20 000 increasing times, a few per second')
  const before = Date.now()
  const field = isoTimeField()
  t.ok(field >= want(before) && field <= want(Date.now()), 'without an argument: now')
})
