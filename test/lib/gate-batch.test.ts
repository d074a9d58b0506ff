import { test } from 'tap'
import { MAX_GATE_BATCH, decodeGateBatch, deadlineMarginMs, encodeGateBatch } from '../../src/lib/gate-batch.js'
import { tokenKeys } from '../../src/tokens/keys.js'

const REV = '0123456789abcdef'
const A = tokenKeys('p:', 'a'.repeat(64))
const B = tokenKeys('p:', 'b'.repeat(64))
const NOW = 1_700_000_000_000_000
const OK = [2, 'tok_a', '["/a/*"]', '', 5, 60, 4, 12]

test('encodeGateBatch: a token\'s checks in one group (keys once, costs comma-separated), groups in order of first appearance', async (t) => {
  t.same(encodeGateBatch(60, null, [{ ...A, cost: 1, routesRev: '' }]),
    { keys: [A.record, A.limiter], args: [60, '', '', '1'], order: [0] })
  t.same(encodeGateBatch(30, NOW + 0.7, [{ ...A, cost: 1, routesRev: REV }, { ...B, cost: 3, routesRev: '' }, { ...A, cost: 2, routesRev: REV }]),
    { keys: [A.record, A.limiter, B.record, B.limiter], args: [30, NOW, REV, '1,2', '', '3'], order: [0, 2, 1] },
    'A\'s two checks share its keys and keep their order; the deadline is whole µs, rounded down (never later)')
  t.same(encodeGateBatch(30, null, [{ ...A, cost: 1, routesRev: REV }, { ...A, cost: 1, routesRev: '' }, { ...A, cost: 1, routesRev: REV }]),
    { keys: [A.record, A.limiter, A.record, A.limiter], args: [30, '', REV, '1,1', '', '1'], order: [0, 2, 1] },
    'one token with two revisions makes two groups')
  const many = Array.from({ length: 200 }, (_, i) => ({ ...(i % 3 === 0 ? B : A), cost: 1, routesRev: '' }))
  const e = encodeGateBatch(60, null, many)
  t.equal(e.keys.length, 4, 'two tokens, four keys, for 200 checks')
  t.same([...e.order].sort((x, y) => x - y), many.map((_, i) => i), 'every check has one place in the reply')
  t.throws(() => encodeGateBatch(60, null, []), RangeError)
  t.ok(MAX_GATE_BATCH >= 16 && MAX_GATE_BATCH <= 1000)
})

test('deadlineMarginMs: a fifth of the timeout, at least 10 ms, at most half', async (t) => {
  const cases: Array<[number, number]> = [[250, 50], [5000, 1000], [40, 10], [10, 5], [1, 0], [100, 20]]
  for (const [timeout, margin] of cases) t.equal(deadlineMarginMs(timeout), margin, `${timeout} ms`)
})

test('decodeGateBatch reads each check\'s reply with its own revision', async (t) => {
  const reply = decodeGateBatch([NOW, 0, [0], [1, 'tok_x'], OK, [3, 'tok_b', '', REV, 1, 1, 0, 5], [4, 'PORTCULLIS_BAD_RECORD malformed in p:{c}:token']],
    ['', '', '', REV, ''])
  if (reply.late) throw new Error('decoded as late')
  t.equal(reply.now, NOW)
  const [unknown, expired, allowed, limited, bad] = reply.results
  t.same(unknown, { status: 'unknown' })
  t.same(expired, { status: 'expired', id: 'tok_x' })
  t.same(allowed, { status: 'allowed', id: 'tok_a', allowedRoutes: '["/a/*"]', routesRev: '', burst: 5, policyWindow: 60, remaining: 4, resetSeconds: 12 })
  t.same(limited, { status: 'limited', id: 'tok_b', allowedRoutes: null, routesRev: REV, burst: 1, policyWindow: 1, remaining: 0, resetSeconds: 5 })
  t.ok(bad instanceof Error && /PORTCULLIS_BAD_RECORD/.test(bad.message), 'a refused record is an error for its check only')
})

test('decodeGateBatch: a malformed item is an error for that check, the others stand', async (t) => {
  const items: unknown[] = [[9], [2, 'id'], 'x', null, [4], [4, 7], [2, 'tok_a', '', REV, 5, 60, 4, 12]]
  for (const item of items) {
    const reply = decodeGateBatch([NOW, 0, OK, item], ['', ''])
    if (reply.late) throw new Error('decoded as late')
    t.same(reply.results[0], { status: 'allowed', id: 'tok_a', allowedRoutes: '["/a/*"]', routesRev: '', burst: 5, policyWindow: 60, remaining: 4, resetSeconds: 12 })
    t.ok(reply.results[1] instanceof Error, `${JSON.stringify(item)} is an error`)
  }
})

test('decodeGateBatch: a late reply wrote nothing and carries no results', async (t) => {
  t.same(decodeGateBatch([NOW, 1], ['', '']), { now: NOW, late: true })
})

test('decodeGateBatch throws on a reply it cannot read as a whole', async (t) => {
  const bad: unknown[] = [
    undefined, null, 'OK', 5, [], [NOW], [NOW, 0], [NOW, 0, OK, OK, OK], [NOW, 1, OK], [NOW, 2, OK, OK],
    [0, 0, OK, OK], [-1, 0, OK, OK], ['1', 0, OK, OK], [1.5, 0, OK, OK], [2 ** 60, 0, OK, OK], [NOW, '0', OK, OK], [NOW, null, OK, OK]
  ]
  for (const raw of bad) t.throws(() => decodeGateBatch(raw, ['', '']), /malformed portcullisGate batch reply/, JSON.stringify(raw) ?? String(raw))
})
