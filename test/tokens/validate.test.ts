import { test } from 'tap'
import { validateTokenInput, validateImportRecord, validateImportList, TokenInputError } from '../../src/tokens/validate.js'

const NOW = Date.parse('2026-01-01T00:00:00Z')
const KEY = 'pc_0123456789abcdefABCDEF'

/** Text that is not a token id: other shapes ids had before, near misses, and things that are not ids at all. */
const NOT_IDS = ['', 'seed-a', 'alice', 'a b', 'x'.repeat(65), 'tok/1', 'é', 'tok_', 'tok_aaaaaaaaaaa', 'tok_aaaaaaaaaaaaa',
  'tok_AAAAAAAAAAAA', 'TOK_aaaaaaaaaaaa', 'tok-aaaaaaaaaaaa', 'tok_aaaaaaaaaaa1', 'tok_aaaaaaaaaaa8', 'tok_aaaaaaaaaaa_',
  ' tok_aaaaaaaaaaaa', 'tok_aaaaaaaaaaaa ', 'tok_aaaaaaaaaaaa\n', 'pc_0123456789abcdefABCDEF']

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
  const rec = { api_key: KEY, ...input, id: 'tok_seedonexxxxx', name: 'seed', expires_at: '2020-01-01T00:00:00Z' }
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
  for (const id of NOT_IDS) {
    t.same(problems({ ...rec, id }), ['id: must be tok_ followed by 12 characters of a-z and 2-7, e.g. tok_k3xq7m2vb4pa'], JSON.stringify(id))
  }
  t.ok(validateImportRecord({ ...rec, id: 'tok_abcdefgh2345' }).ok, 'an id of the shape is accepted')
  const oldStyle = validateImportList([{ ...rec, id: 'seed-a' }])
  t.same(oldStyle.ok ? [] : oldStyle.problems, ['record 1: id: must be tok_ followed by 12 characters of a-z and 2-7, e.g. tok_k3xq7m2vb4pa'],
    'the label does not repeat an id of the wrong shape')

  t.same(validateImportList(rec), { ok: true, value: [{ ...rec }] }, 'one object is a list of one')
  t.same(validateImportList([]), { ok: false, problems: ['the import contains no records'] })
  const list = validateImportList([rec, { ...rec, api_key: KEY + 'x', rate_limit: 0 }, { ...rec, api_key: KEY + 'y' }, { ...input, api_key: KEY }, 7])
  t.same(list.ok ? [] : list.problems, [
    'record 2 (id tok_seedonexxxxx): rate_limit: must be requests per window: a whole number from 1 to 1000000',
    'record 3 (id tok_seedonexxxxx): id tok_seedonexxxxx is also used by record 1',
    'record 4: api_key is the same as in record 1',
    'record 5: record: expected a JSON object'
  ])
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
