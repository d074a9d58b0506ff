import { test } from 'tap'
import { createHash } from 'node:crypto'
import {
  generateApiKey, generateTokenId, digestApiKey, looksLikeTokenId, parseTtl, toRedisHash, fromRedisHash,
  validateTokenInput, validateImportRecord, validateImportList, tokenRecordKey, tokenLimiterKey, tokenIndexKey,
  parseRfc3339, formatRfc3339, nowRfc3339, routesRevision, TokenInputError, type TokenRecord
} from '../../src/lib/token.js'
import { tokenKeys } from '../../src/lib/gcra.js'

const NOW = Date.parse('2026-01-01T00:00:00Z')
const KEY = 'pc_0123456789abcdefABCDEF'

test('api keys: pc_ + 32 base64url chars of 192 random bits, never repeated', async (t) => {
  const keys = Array.from({ length: 2000 }, generateApiKey)
  t.same(keys.filter((k) => !/^pc_[A-Za-z0-9_-]{32}$/.test(k)), [], 'format')
  t.ok(keys.every((k) => Buffer.from(k.slice(3), 'base64url').length === 24), '24 random bytes each')
  t.equal(new Set(keys).size, 2000, 'no repeats')
  // every base64url symbol shows up: the bytes are not biased to a subset
  t.equal(new Set(keys.map((k) => k.slice(3)).join('')).size, 64)
})

test('token ids: tok_ + 12 lowercase base32 chars', async (t) => {
  const ids = Array.from({ length: 2000 }, generateTokenId)
  t.same(ids.filter((id) => !/^tok_[a-z2-7]{12}$/.test(id) || !looksLikeTokenId(id)), [], 'format')
  t.equal(new Set(ids).size, 2000, 'no repeats')
  t.equal(new Set(ids.map((s) => s.slice(4)).join('')).size, 32, 'all 32 symbols used')
  t.notOk(looksLikeTokenId(''))
  t.notOk(looksLikeTokenId('a'.repeat(65)))
  t.notOk(looksLikeTokenId('tok.x'))
})

test('digest is lowercase hex SHA-256 of the key', async (t) => {
  t.equal(digestApiKey('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  t.equal(digestApiKey(KEY), createHash('sha256').update(KEY).digest('hex'))
  t.match(digestApiKey(generateApiKey()), /^[0-9a-f]{64}$/)
})

test('key names share the {digest} hash tag and agree with gcra.ts', async (t) => {
  const d = digestApiKey(KEY)
  t.equal(tokenRecordKey('portcullis:', d), `portcullis:{${d}}:token`)
  t.equal(tokenLimiterKey('portcullis:', d), `portcullis:{${d}}:gcra`)
  t.equal(tokenIndexKey('portcullis:'), 'portcullis:tokens')
  t.same(tokenKeys('p:', d), { record: tokenRecordKey('p:', d), limiter: tokenLimiterKey('p:', d) })
})

test('parseTtl', async (t) => {
  const good: Array<[string, number]> = [['45s', 45_000], ['15m', 900_000], ['12h', 43_200_000], ['30d', 2_592_000_000], ['1s', 1000]]
  for (const [s, ms] of good) t.equal(parseTtl(s), ms, s)
  for (const s of ['', '0s', '-1d', '1', 'd', '1.5h', '1h30m', ' 1d', '1d ', '1D', '1w', '01d', '99999999999d', '40000d']) {
    t.equal(parseTtl(s), null, JSON.stringify(s))
  }
})

test('RFC 3339 parsing is exact and strict', async (t) => {
  const good: Array<[string, string, bigint]> = [
    ['2027-12-31T23:59:59Z', '2027-12-31T23:59:59Z', 1830297599000000n],
    ['2027-12-31t23:59:59z', '2027-12-31T23:59:59Z', 1830297599000000n],
    ['2028-01-01T01:59:59+02:00', '2027-12-31T23:59:59Z', 1830297599000000n],
    ['2027-12-31T20:29:59-03:30', '2027-12-31T23:59:59Z', 1830297599000000n],
    ['2027-12-31T23:59:59.5Z', '2027-12-31T23:59:59.500Z', 1830297599500000n],
    ['2027-12-31T23:59:59.123456789Z', '2027-12-31T23:59:59.123456Z', 1830297599123456n],
    ['2028-02-29T00:00:00Z', '2028-02-29T00:00:00Z', 1835395200000000n]
  ]
  for (const [text, canon, us] of good) t.same(parseRfc3339(text), { us, text: canon }, text)
  for (const s of ['2027-02-30T00:00:00Z', '2027-02-29T00:00:00Z', '2027-13-01T00:00:00Z', '2027-12-31T24:00:00Z',
    '2027-12-31T23:60:00Z', '2027-12-31T23:59:60Z', '2027-12-31 23:59:59Z', '2027-12-31T23:59:59', '2027-12-31',
    '2027-12-31T23:59:59+0200', '2027-12-31T23:59:59+24:00', '1969-12-31T23:59:59Z', 'tomorrow', '']) {
    t.equal(parseRfc3339(s), null, s)
  }
  t.equal(formatRfc3339(1_000_001n), '1970-01-01T00:00:01.000001Z')
  t.equal(nowRfc3339(NOW), '2026-01-01T00:00:00Z')
})

const input = { rate_limit: 100, allowed_routes: ['/api/v1/users/*'] }

test('names: every character that breaks or reorders a line of `tokens list` is refused', async (t) => {
  const refused: Array<[string, number]> = [
    ['NUL', 0x00], ['TAB', 0x09], ['LF', 0x0a], ['CR', 0x0d], ['US', 0x1f], ['DEL', 0x7f],
    ['first C1', 0x80], ['NEL (C1)', 0x85], ['CSI (C1)', 0x9b], ['last C1', 0x9f],
    ['LINE SEPARATOR', 0x2028], ['PARAGRAPH SEPARATOR', 0x2029],
    ['LRE', 0x202a], ['RLE', 0x202b], ['PDF', 0x202c], ['LRO', 0x202d], ['RLO', 0x202e],
    ['LRI', 0x2066], ['RLI', 0x2067], ['FSI', 0x2068], ['PDI', 0x2069]
  ]
  for (const [label, code] of refused) {
    const name = `ci${String.fromCharCode(code)}bot`
    const r = validateTokenInput({ ...input, name }, NOW)
    t.match(r, { ok: false, problems: [/^name: must be free text, at most 128 characters, no control characters/] }, `${label} U+${code.toString(16).padStart(4, '0')}: create`)
    t.match(validateImportRecord({ api_key: KEY, ...input, name }), { ok: false }, `${label}: import`)
    // The message names the rule, never the refused text.
    if (!r.ok) t.notOk(r.problems.join('').includes(name), `${label}: not echoed`)
  }
  // Neighbours and ordinary text stay allowed: non-ASCII, right-to-left scripts and the LRM/RLM/ALM
  // marks they need (their effect ends with the next strong character, not the line).
  for (const name of ['', ' ', '~', '\u00a0', '\u00a0café', 'ü東京', 'שלום 2', 'a\u200eb', 'a\u200fb', 'a\u061cb', 'a\u2027b', 'a\u202fb', 'a\u2065b', 'a\u206ab', '😀']) {
    t.equal(validateTokenInput({ ...input, name }, NOW).ok, true, `${JSON.stringify(name)} allowed`)
  }
})

test('validateTokenInput: accepts, normalises, lists every problem', async (t) => {
  t.same(validateTokenInput(input, NOW), { ok: true, value: input })
  t.same(validateTokenInput({ ...input, expires_at: null }, NOW), { ok: true, value: input })
  const full = { ...input, burst: 5, window_seconds: 1, name: 'ci', expires_at: '2027-01-01T02:00:00+02:00' }
  t.same(validateTokenInput(full, NOW), { ok: true, value: { ...full, expires_at: '2027-01-01T00:00:00Z' } })

  const bad = (x: unknown): string[] => {
    const r = validateTokenInput(x, NOW)
    return r.ok ? [] : r.problems
  }
  t.same(bad(null), ['record: expected a JSON object'])
  t.same(bad([]), ['record: expected a JSON object'])
  t.match(bad({}), ['rate_limit: is required', 'allowed_routes: is required'])
  t.match(bad({ ...input, rate_limit: 0 }), [/^rate_limit: must be requests per window: a whole number from 1/])
  t.match(bad({ ...input, rate_limit: 1.5 }), [/^rate_limit: must be/])
  t.match(bad({ ...input, rate_limit: '100' }), [/^rate_limit: must be/])
  t.match(bad({ ...input, rate_limit: 1e7 }), [/^rate_limit: must be/])
  t.match(bad({ ...input, burst: 0 }), [/^burst: must be/])
  t.match(bad({ ...input, window_seconds: -1 }), [/^window_seconds: must be/])
  t.match(bad({ ...input, name: 'x'.repeat(129) }), [/^name: must be free text, at most 128/])
  t.match(bad({ ...input, name: 'a\nb' }), [/^name: must be/])
  t.match(bad({ ...input, expires_at: '2027-02-30T00:00:00Z' }), [/^expires_at: must be an RFC 3339 date-time/])
  t.match(bad({ ...input, expires_at: 1234 }), [/^expires_at: must be an RFC 3339/])
  t.same(bad({ ...input, expires_at: '2025-12-31T23:59:59Z' }), ['expires_at: 2025-12-31T23:59:59Z is in the past'])
  t.match(bad({ ...input, allowed_routes: [] }), [/^allowed_routes: must be a non-empty list/])
  t.match(bad({ ...input, allowed_routes: '/x' }), [/^allowed_routes: must be a non-empty list/])
  t.match(bad({ ...input, allowed_routes: ['/ok', 5] }), [/^allowed_routes\[1\]: /])
  t.same(bad({ ...input, allowed_routes: ['/ok', '/a/../b', 'FOO /x'] }), [
    'allowed_routes[1]: invalid route pattern "/a/../b": contains a ".." segment',
    'allowed_routes[2]: invalid route pattern "FOO /x": unknown method "FOO" (known: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT)'
  ])
  t.same(bad({ ...input, rate_limt: 5 }), ['rate_limt: unknown field'])
  t.same(bad({ ...input, api_key: KEY }), ['api_key: unknown field'], 'create input cannot choose its key')
  const several = bad({ rate_limit: 0, burst: 'x', allowed_routes: [] })
  t.equal(several.length, 3, 'every problem listed')
  t.match(bad({ rate_limit: 0, allowed_routes: ['/a*', ''] }), [/^rate_limit: /, /^allowed_routes\[1\]: /, /^allowed_routes\[0\]: invalid route pattern/],
    'pattern problems are listed alongside schema problems, each once')
})

test('validateImportRecord and validateImportList', async (t) => {
  const rec = { api_key: KEY, ...input, id: 'seed-1', name: 'seed', expires_at: '2020-01-01T00:00:00Z' }
  const r = validateImportRecord(rec)
  t.ok(r.ok, 'a past expiry is allowed on import (how an operator expires a token by editing)')
  t.ok(validateImportRecord({ ...rec, created_at: 'whatever' }).ok, 'created_at from list output is accepted and ignored')
  t.same(r.ok && 'created_at' in r.value, false)
  const problems = (x: unknown): string[] => { const v = validateImportRecord(x); return v.ok ? [] : v.problems }
  t.same(problems({ ...input }), ['api_key: is required'])
  for (const key of ['short', 'x'.repeat(513), 'has a space in it here', 'tab\tinside-the-key-1234', 'nön-ascii-key-1234567', 'comma,inside-the-key-1234', 'bang!inside-the-key-1234']) {
    const p = problems({ ...rec, api_key: key })
    t.same(p, ['api_key: must be 16 to 512 characters of the RFC 6750 token alphabet: A-Z a-z 0-9 - . _ ~ + / (then optional =)'], 'bad key refused')
    t.notOk(p.join().includes(key), 'the key is never echoed')
  }
  for (const id of ['', 'a b', 'x'.repeat(65), 'tok/1', 'é']) t.match(problems({ ...rec, id }), [/^id: must be 1 to 64/], id)

  t.same(validateImportList(rec), { ok: true, value: [{ ...rec }] }, 'one object is a list of one')
  t.same(validateImportList([]), { ok: false, problems: ['the import contains no records'] })
  const list = validateImportList([rec, { ...rec, api_key: KEY + 'x', rate_limit: 0 }, { ...rec, api_key: KEY + 'y' }, { ...input, api_key: KEY }, 7])
  t.same(list.ok ? [] : list.problems, [
    'record 2 (id seed-1): rate_limit: must be requests per window: a whole number from 1 to 1000000',
    'record 3 (id seed-1): id seed-1 is also used by record 1',
    'record 4: api_key is the same as in record 1',
    'record 5: record: expected a JSON object'
  ])
})

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

test('TokenInputError lists problems in its message', async (t) => {
  t.equal(new TokenInputError(['a']).message, 'a')
  t.equal(new TokenInputError(['a', 'b']).message, '2 problems: a; b')
})

test('a bucket that would take over 100 years to refill is refused', async (t) => {
  const v = validateTokenInput({ rate_limit: 1, burst: 1_000_000, window_seconds: 31_536_000, allowed_routes: ['/*'] })
  t.notOk(v.ok)
  t.match(v.ok ? [] : v.problems, [/time to refill a full bucket\) must be at most 3153600000 s/])
  t.ok(validateTokenInput({ rate_limit: 1, burst: 100, window_seconds: 31_536_000, allowed_routes: ['/*'] }).ok, '100 years exactly is fine')
})
