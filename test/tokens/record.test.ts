import { test } from 'tap'
import { createHash } from 'node:crypto'
import { toRedisHash, fromRedisHash, nowRfc3339, routesRevision } from '../../src/tokens/record.js'
import { type TokenRecord } from '../../src/tokens/schema.js'
import { TokenInputError } from '../../src/tokens/validate.js'

const NOW = Date.parse('2026-01-01T00:00:00Z')

test('Redis hash round trip; absent burst/window stay absent and read back as effective values', async (t) => {
  const minimal: TokenRecord = { id: 'tok_a', name: '', rate_limit: 10, allowed_routes: ['/a/*'], created_at: '2026-01-01T00:00:00Z' }
  const h = toRedisHash(minimal)
  t.same(h, { id: 'tok_a', name: '', rate_limit: '10', allowed_routes: '["/a/*"]', routes_rev: routesRevision('["/a/*"]'), created_at: '2026-01-01T00:00:00Z' })
  t.same(fromRedisHash(h, 60), { ...minimal, burst: 10, window_seconds: 60, expires_at: null })

  const full: TokenRecord = { ...minimal, name: 'n', burst: 3, window_seconds: 7, expires_at: '2027-12-31T23:59:59.000001Z', allowed_routes: ['GET /x', '/y/*'] }
  const fh = toRedisHash(full)
  t.equal(fh.burst, '3')
  t.equal(fh.window_seconds, '7')
  t.equal(fh.expires_at_us, '1830297599000001')
  t.equal(fh.allowed_routes, '["GET /x","/y/*"]')
  t.same(fromRedisHash(fh, 60), full)
  t.throws(() => toRedisHash({ ...minimal, expires_at: 'never' }), TokenInputError)

  t.equal(fromRedisHash({}, 60), null, 'missing record')
  t.equal(fromRedisHash({ ...h, rate_limit: 'x' }, 60), null)
  t.equal(fromRedisHash({ ...h, allowed_routes: '{' }, 60), null)
  t.equal(fromRedisHash({ ...h, allowed_routes: '[1]' }, 60), null)
  t.equal(fromRedisHash({ ...h, burst: '0' }, 60)?.burst, 10, 'an unreadable burst falls back to rate_limit')
})

test('routes_rev: 16 hex digits of SHA-256 of the stored routes text, written with every record', async (t) => {
  const base: TokenRecord = { id: 'tok_a', name: '', rate_limit: 10, allowed_routes: ['/a/*', 'GET /b'], created_at: '2026-01-01T00:00:00Z' }
  const h = toRedisHash(base)
  t.equal(h.routes_rev, createHash('sha256').update('["/a/*","GET /b"]').digest('hex').slice(0, 16), 'of the exact JSON text stored')
  t.match(h.routes_rev, /^[0-9a-f]{16}$/)
  t.equal(routesRevision('["/a/*","GET /b"]'), h.routes_rev)
  // Stable: equal routes give an equal revision, whatever else about the record changes.
  const other = toRedisHash({ ...base, id: 'tok_b', name: 'x', rate_limit: 5, burst: 2, window_seconds: 9, expires_at: '2030-01-01T00:00:00Z', created_at: '2027-01-01T00:00:00Z' })
  t.equal(other.routes_rev, h.routes_rev, 'same routes, same revision')
  t.equal(toRedisHash({ ...base, allowed_routes: ['/a/*', 'GET /b'] }).routes_rev, h.routes_rev, 'an equal copy of the list')
  // Different routes: a different revision, including order, method lists and single characters.
  const revs = [['/a/*', 'GET /b'], ['GET /b', '/a/*'], ['/a/*'], ['/a/*', 'GET,HEAD /b'], ['/a/*', 'GET /c'], ['/A/*', 'GET /b'], ['/a/*', 'GET /b', '/a/*']]
    .map((routes) => toRedisHash({ ...base, allowed_routes: routes }).routes_rev)
  t.equal(new Set(revs).size, revs.length, `each list its own revision: ${revs.join(' ')}`)
  t.notOk(revs.slice(1).includes(h.routes_rev), 'and none equal to the original once changed')
  // Read back ignores it: it is not part of the public record.
  t.notOk('routes_rev' in (fromRedisHash(h, 60) ?? {}))
})

test('created_at is the current instant in RFC 3339 UTC', async (t) => {
  t.equal(nowRfc3339(NOW), '2026-01-01T00:00:00Z')
  t.equal(nowRfc3339(NOW + 1), '2026-01-01T00:00:00.001Z')
})
