import { test } from 'tap'
import { RedisClock } from '../../src/lib/redis-clock.js'

const G = 1_000_000_000_000 // a gateway reading (µs), an epoch boundary
const R = 1_700_000_000_000_000 // Redis time at G, the true offset R - G

test('unknown until a reply is seen; then a lower bound of the true offset', async (t) => {
  const c = new RedisClock()
  t.equal(c.toRedis('main', G), null)
  // Redis read its clock at G; the reply arrived 300 µs later: offset >= R - (G + 300).
  c.observe('main', R, G + 300)
  t.equal(c.toRedis('main', G + 1000), R + 700, 'never later than the true Redis time')
  t.equal(c.toRedis('other', G), null, 'per server')
})

test('the tightest sample wins; a slow reply does not loosen it', async (t) => {
  const c = new RedisClock()
  c.observe('main', R, G + 5000) // the event loop was late reading it
  c.observe('main', R + 10_000, G + 10_050)
  c.observe('main', R + 20_000, G + 80_000)
  t.equal(c.toRedis('main', G), R - 50)
})

test('a forward step of Redis\' clock is followed at once; a backward one within two epochs', async (t) => {
  const c = new RedisClock()
  c.observe('main', R, G)
  c.observe('main', R + 2_000_000 + 1000, G + 1000) // Redis jumped 2 s ahead
  t.equal(c.toRedis('main', G + 2000), R + 2_000_000 + 2000)
  // Redis stepped back 1 s: the old, larger bound stays safe-side only for this and the next epoch.
  const back = (g: number): void => { c.observe('main', R - 1_000_000 + g - G, g) }
  back(G + 10_000_000)
  t.equal(c.toRedis('main', G + 10_000_000), R + 2_000_000 + 10_000_000, 'same epoch: still the larger bound')
  back(G + 31_000_000)
  t.equal(c.toRedis('main', G + 31_000_000), R + 2_000_000 + 31_000_000, 'next epoch: the previous one still counts')
  back(G + 61_000_000)
  t.equal(c.toRedis('main', G + 61_000_000), R - 1_000_000 + 61_000_000, 'two epochs on: only the new clock')
})

test('a long silence forgets the old epochs at the next sample; forget() drops a server', async (t) => {
  const c = new RedisClock()
  c.observe('main', R + 5_000_000, G)
  c.observe('main', R, G + 300_000_000)
  t.equal(c.toRedis('main', G + 300_000_000), R)
  c.observe('b', R, G)
  c.forget('b')
  t.equal(c.toRedis('b', G), null)
  t.not(c.toRedis('main', G), null)
  c.forget()
  t.equal(c.toRedis('main', G), null)
})
