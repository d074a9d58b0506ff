import { test } from 'tap'
import { parseTtl } from '../src/cli-ttl.js'

test('parseTtl', async (t) => {
  const good: Array<[string, number]> = [['45s', 45_000], ['15m', 900_000], ['12h', 43_200_000], ['30d', 2_592_000_000], ['1s', 1000]]
  for (const [s, ms] of good) t.equal(parseTtl(s), ms, s)
  for (const s of ['', '0s', '-1d', '1', 'd', '1.5h', '1h30m', ' 1d', '1d ', '1D', '1w', '01d', '99999999999d', '40000d']) {
    t.equal(parseTtl(s), null, JSON.stringify(s))
  }
})
