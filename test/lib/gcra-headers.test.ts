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

test('decodeGateReply reads the compact decision the script sends when the routes are unchanged', async (t) => {
  const REV16 = '0123456789abcdef'
  t.same(decodeGateReply(`2,${REV16},10,60,9,6,tok_abcdefghijkl`, REV16), {
    status: 'allowed', id: 'tok_abcdefghijkl', allowedRoutes: null, routesRev: REV16, burst: 10, policyWindow: 60, remaining: 9, resetSeconds: 6
  })
  t.same(decodeGateReply(`3,${REV16},1,1,0,1,legacy,id with, commas`, REV16), {
    status: 'limited', id: 'legacy,id with, commas', allowedRoutes: null, routesRev: REV16, burst: 1, policyWindow: 1, remaining: 0, resetSeconds: 1
  }, 'the id is last: commas in an old id stay in it')
  t.same(decodeGateReply(`2,${REV16},4503599627370496,1,4503599627370495,0,x`, REV16), {
    status: 'allowed', id: 'x', allowedRoutes: null, routesRev: REV16, burst: 2 ** 52, policyWindow: 1, remaining: 2 ** 52 - 1, resetSeconds: 0
  }, 'every digit of a large count')
  const bad: Array<[string, string, RegExp]> = [
    [`2,${REV16},10,60,9,6,tok_x`, '', /caller does not hold/],
    [`2,${REV16},10,60,9,6,tok_x`, 'fedcba9876543210', /caller does not hold/],
    ['2,,10,60,9,6,tok_x', '', /caller does not hold/],
    [`4,${REV16},10,60,9,6,tok_x`, REV16, /unknown status code/],
    [`2,${REV16},10,60,9,6,`, REV16, /id is not a non-empty string/],
    [`2,${REV16},10,60,9,6`, REV16, /7 comma-separated parts/],
    [`2,${REV16},0,60,9,6,tok_x`, REV16, /burst is not an integer >= 1/],
    [`2,${REV16},10,-1,9,6,tok_x`, REV16, /policy window/],
    [`2,${REV16},10,60,9.5,6,tok_x`, REV16, /remaining/],
    [`2,${REV16},10,60,,6,tok_x`, REV16, /remaining/],
    [`3,${REV16},10,60,0,0,tok_x`, REV16, /reset seconds is not an integer >= 1/],
    [`2,${REV16},99999999999999999,60,0,0,tok_x`, REV16, /burst/],
    ['', '', /7 comma-separated parts/]
  ]
  for (const [raw, known, want] of bad) t.throws(() => decodeGateReply(raw, known), want, `${raw} holding ${known}`)
})
