import { test } from 'tap'
import { GCRA_COMMAND, GCRA_SCRIPT, decodeGateReply, rateLimitHeaders } from '../../src/lib/gcra.js'

const REV = '0123456789abcdef'

test('decodeGateReply reads every status', async (t) => {
  const cases: Array<[unknown, string, unknown]> = [
    [[0], '', { status: 'unknown' }],
    [[0], REV, { status: 'unknown' }],
    [[1, 'tok_1'], '', { status: 'expired', id: 'tok_1' }],
    [[2, 'tok_1', '["/a/*"]', '', 100, 60, 99, 1], '',
      { status: 'allowed', id: 'tok_1', allowedRoutes: '["/a/*"]', routesRev: '', burst: 100, policyWindow: 60, remaining: 99, resetSeconds: 1 }],
    [[2, 'tok_1', '[]', '', 1, 1, 0, 0], '',
      { status: 'allowed', id: 'tok_1', allowedRoutes: '[]', routesRev: '', burst: 1, policyWindow: 1, remaining: 0, resetSeconds: 0 }],
    [[3, 'tok_2', '[]', '', 5, 120, 0, 17], '',
      { status: 'limited', id: 'tok_2', allowedRoutes: '[]', routesRev: '', burst: 5, policyWindow: 120, remaining: 0, resetSeconds: 17 }],
    // Routes with a revision: sent because the caller held none, or another one.
    [[2, 'tok_1', '["/a/*"]', REV, 100, 60, 99, 1], '',
      { status: 'allowed', id: 'tok_1', allowedRoutes: '["/a/*"]', routesRev: REV, burst: 100, policyWindow: 60, remaining: 99, resetSeconds: 1 }],
    [[2, 'tok_1', '["/a/*"]', REV, 100, 60, 99, 1], 'fedcba9876543210',
      { status: 'allowed', id: 'tok_1', allowedRoutes: '["/a/*"]', routesRev: REV, burst: 100, policyWindow: 60, remaining: 99, resetSeconds: 1 }],
    // An empty routes slot for the revision the caller holds: unchanged, null.
    [[2, 'tok_1', '', REV, 100, 60, 99, 1], REV,
      { status: 'allowed', id: 'tok_1', allowedRoutes: null, routesRev: REV, burst: 100, policyWindow: 60, remaining: 99, resetSeconds: 1 }],
    [[3, 'tok_2', '', REV, 5, 120, 0, 17], REV,
      { status: 'limited', id: 'tok_2', allowedRoutes: null, routesRev: REV, burst: 5, policyWindow: 120, remaining: 0, resetSeconds: 17 }]
  ]
  for (const [raw, known, want] of cases) t.same(decodeGateReply(raw, known), want, `${JSON.stringify(raw)} holding ${JSON.stringify(known)}`)
  t.same(decodeGateReply([2, 'tok_1', '[]', REV, 1, 1, 0, 0]), decodeGateReply([2, 'tok_1', '[]', REV, 1, 1, 0, 0], ''), 'known revision defaults to none')
})

test('decodeGateReply refuses "unchanged" unless it names the revision the caller holds', async (t) => {
  const cases: Array<[unknown, string]> = [
    [[2, 'id', '', REV, 1, 1, 0, 1], ''],
    [[2, 'id', '', REV, 1, 1, 0, 1], 'fedcba9876543210'],
    [[2, 'id', '', '', 1, 1, 0, 1], ''],
    [[3, 'id', '', REV, 1, 1, 0, 1], REV.toUpperCase()]
  ]
  for (const [raw, known] of cases) {
    t.throws(() => decodeGateReply(raw, known), /routes unchanged from a revision the caller does not hold/, `${JSON.stringify(raw)} holding ${JSON.stringify(known)}`)
  }
  t.throws(() => decodeGateReply([2, 'id', '', REV, 1, 1, 0, 1]), /caller does not hold/, 'holding nothing by default')
})

test('decodeGateReply throws on a malformed reply', async (t) => {
  const bad: unknown[] = [
    undefined, null, 'OK', 2, {}, [],
    [4], [-1], ['0'], [null], [2],
    [0, 'extra'], [1], [1, ''], [1, 7], [1, 'id', 'extra'],
    [2, 'id', '[]', '', 1, 1, 0], [2, 'id', '[]', '', 1, 1, 0, 1, 9],
    // the reply shape before routes_rev: one element short
    [2, 'id', '[]', 1, 1, 0, 1], [3, 'id', '[]', 5, 120, 0, 17],
    [2, null, '[]', '', 1, 1, 0, 1], [2, 'id', null, '', 1, 1, 0, 1], [2, 'id', ['/a'], '', 1, 1, 0, 1],
    [2, 'id', '[]', null, 1, 1, 0, 1], [2, 'id', '[]', 7, 1, 1, 0, 1], [2, 'id', '[]', 'abc', 1, 1, 0, 1],
    [2, 'id', '[]', '0123456789ABCDEF', 1, 1, 0, 1], [2, 'id', '[]', '0123456789abcdef0', 1, 1, 0, 1],
    [2, 'id', '[]', '', 0, 1, 0, 1], [2, 'id', '[]', '', 1, 0, 0, 1], [2, 'id', '[]', '', 1, 1, -1, 1],
    [2, 'id', '[]', '', 1, 1, 0, -1], [2, 'id', '[]', '', 1.5, 1, 0, 1], [2, 'id', '[]', '', '1', 1, 0, 1],
    [2, 'id', '[]', '', 1, 1, 0, Number.NaN], [2, 'id', '[]', '', 1, 1, 0, 2 ** 60],
    [3, 'id', '[]', '', 1, 1, 0, 0]
  ]
  for (const raw of bad) t.throws(() => decodeGateReply(raw), /malformed portcullisGate reply/, JSON.stringify(raw) ?? String(raw))
  const circular: unknown[] = [9]
  circular.push(circular)
  t.throws(() => decodeGateReply(circular), /unknown status code/)
})

test('rateLimitHeaders: draft-ietf-httpapi-ratelimit-headers-11 strings', async (t) => {
  t.same(rateLimitHeaders({ burst: 100, policyWindow: 60, remaining: 42, resetSeconds: 17 }),
    { 'ratelimit-policy': '"default";q=100;w=60', ratelimit: '"default";r=42;t=17' })
  const limited = decodeGateReply([3, 'tok', '[]', '', 5, 120, 0, 9])
  if (limited.status !== 'limited') throw new Error('decoded wrong')
  t.same(rateLimitHeaders(limited), { 'ratelimit-policy': '"default";q=5;w=120', ratelimit: '"default";r=0;t=9' })
})

test('the script is loaded from gcra.lua at import', async (t) => {
  t.equal(GCRA_COMMAND, 'portcullisGate')
  t.match(GCRA_SCRIPT, /redis\.call\('TIME'\)/)
  t.notMatch(GCRA_SCRIPT, /tostring\(/, 'numbers are never formatted with tostring')
})
