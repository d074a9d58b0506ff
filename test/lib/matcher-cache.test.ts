import { test } from 'tap'
import { MatcherCache, MATCHER_CACHE_MAX } from '../../src/lib/matcher-cache.js'
import { DENY_ALL, clearRouteCache, compiledRoutes } from '../../src/lib/route-patterns.js'

const D1 = '1'.repeat(64)
const D2 = '2'.repeat(64)
const R1 = '0123456789abcdef'
const R2 = 'fedcba9876543210'

test('routes with a revision are compiled once and cached under it', async (t) => {
  const c = new MatcherCache()
  t.equal(c.max, MATCHER_CACHE_MAX)
  t.equal(c.get(D1), undefined)
  const m = c.resolve(D1, undefined, '["/a/*"]', R1)
  t.ok(m?.allows('GET', '/a/1'))
  t.notOk(m?.allows('GET', '/b'))
  t.same(c.get(D1), { rev: R1, matcher: m })
  t.equal(c.compiles, 1)
  t.equal(c.size, 1)

  // "Unchanged" for the held revision: the held matcher, nothing compiled.
  const held = c.get(D1)
  t.equal(c.resolve(D1, held, null, R1), m)
  t.equal(c.compiles, 1)

  // A new revision replaces the entry; its routes apply at once, in both directions.
  const n = c.resolve(D1, held, '["/b/*"]', R2)
  t.ok(n?.allows('GET', '/b/1'), 'newly allowed')
  t.notOk(n?.allows('GET', '/a/1'), 'newly forbidden')
  t.equal(c.get(D1)?.rev, R2)
  t.equal(c.compiles, 2)
  t.equal(c.size, 1, 'one entry per token')
})

test('"unchanged" without the matching held revision resolves to null (the caller fails closed)', async (t) => {
  const c = new MatcherCache()
  c.resolve(D1, undefined, '["/a/*"]', R1)
  const held = c.get(D1)
  t.equal(c.resolve(D1, undefined, null, R1), null, 'nothing held')
  t.equal(c.resolve(D1, held, null, R2), null, 'another revision held')
  t.equal(c.resolve(D1, { rev: '', matcher: DENY_ALL }, null, ''), null, 'no revision at all')
})

test('the held entry survives its eviction between call and reply', async (t) => {
  const c = new MatcherCache(1)
  c.resolve(D1, undefined, '["/a/*"]', R1)
  const held = c.get(D1)
  c.resolve(D2, undefined, '["/b/*"]', R1)
  t.equal(c.get(D1), undefined, 'evicted meanwhile')
  t.ok(c.resolve(D1, held, null, R1)?.allows('GET', '/a/x'), 'still resolved from what the caller held')
})

test('unreadable routes compile to DENY_ALL and are cached like any other revision', async (t) => {
  const c = new MatcherCache()
  for (const [i, bad] of ['not json', '{}', '"/x"', '[1]', '["/a*"]', '[]'].entries()) {
    const d = String(i).repeat(64)
    const m = c.resolve(d, undefined, bad, R1)
    t.notOk(m?.allows('GET', '/a'), `${bad} allows nothing`)
    t.equal(c.resolve(d, c.get(d), null, R1), m)
  }
  t.equal(c.resolve(D1, undefined, 'not json', R1), DENY_ALL)
})

test('a record without a revision: compiled by text every time, never filed under the token', async (t) => {
  clearRouteCache()
  const c = new MatcherCache()
  c.resolve(D1, undefined, '["/a/*"]', R1)
  const m = c.resolve(D1, c.get(D1), '["/legacy/*"]', '')
  t.ok(m?.allows('GET', '/legacy/1'))
  t.equal(m, compiledRoutes('["/legacy/*"]'), 'the text-keyed cache: same text, same matcher')
  t.equal(c.get(D1), undefined, 'a revision the record no longer has is dropped')
  t.equal(c.compiles, 1, 'not counted as a revision compile')
  t.equal(c.size, 0)
  clearRouteCache()
})

test('bounded: the entry written longest ago goes first; a rewrite makes an entry young again', async (t) => {
  const c = new MatcherCache(3)
  const d = (i: number): string => String(i).padStart(64, '0')
  for (let i = 0; i < 3; i++) c.resolve(d(i), undefined, `["/t${i}/*"]`, R1)
  c.resolve(d(0), c.get(d(0)), '["/t0b/*"]', R2)
  c.resolve(d(3), undefined, '["/t3/*"]', R1)
  t.equal(c.size, 3)
  t.equal(c.get(d(1)), undefined, 'the oldest write evicted')
  t.ok(c.get(d(0)), 'the rewritten one kept')
  t.ok(c.get(d(2)))
  t.ok(c.get(d(3)))
  const big = new MatcherCache()
  for (let i = 0; i < MATCHER_CACHE_MAX + 5; i++) big.resolve(d(i), undefined, '["/x"]', R1)
  t.equal(big.size, MATCHER_CACHE_MAX)
  t.equal(big.get(d(4)), undefined)
  t.ok(big.get(d(5)))
  for (const bad of [0, -1, 1.5, Number.NaN]) t.throws(() => new MatcherCache(bad), RangeError, String(bad))
})
