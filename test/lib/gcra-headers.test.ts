import { test } from 'tap'
import { GCRA_COMMAND, GCRA_SCRIPT, decodeGateReply, rateLimitHeaders, tokenKeys } from '../../src/lib/gcra.js'

test('decodeGateReply reads every status', async (t) => {
  const cases: Array<[unknown, unknown]> = [
    [[0], { status: 'unknown' }],
    [[1, 'tok_1'], { status: 'expired', id: 'tok_1' }],
    [[2, 'tok_1', '["/a/*"]', 100, 60, 99, 1],
      { status: 'allowed', id: 'tok_1', allowedRoutes: '["/a/*"]', burst: 100, policyWindow: 60, remaining: 99, resetSeconds: 1 }],
    [[2, 'tok_1', '[]', 1, 1, 0, 0],
      { status: 'allowed', id: 'tok_1', allowedRoutes: '[]', burst: 1, policyWindow: 1, remaining: 0, resetSeconds: 0 }],
    [[3, 'tok_2', '[]', 5, 120, 0, 17],
      { status: 'limited', id: 'tok_2', allowedRoutes: '[]', burst: 5, policyWindow: 120, remaining: 0, resetSeconds: 17 }]
  ]
  for (const [raw, want] of cases) t.same(decodeGateReply(raw), want, JSON.stringify(raw))
})

test('decodeGateReply throws on a malformed reply', async (t) => {
  const bad: unknown[] = [
    undefined, null, 'OK', 2, {}, [],
    [4], [-1], ['0'], [null], [2],
    [0, 'extra'], [1], [1, ''], [1, 7], [1, 'id', 'extra'],
    [2, 'id', '[]', 1, 1, 0], [2, 'id', '[]', 1, 1, 0, 1, 9],
    [2, null, '[]', 1, 1, 0, 1], [2, 'id', null, 1, 1, 0, 1], [2, 'id', ['/a'], 1, 1, 0, 1],
    [2, 'id', '[]', 0, 1, 0, 1], [2, 'id', '[]', 1, 0, 0, 1], [2, 'id', '[]', 1, 1, -1, 1],
    [2, 'id', '[]', 1, 1, 0, -1], [2, 'id', '[]', 1.5, 1, 0, 1], [2, 'id', '[]', '1', 1, 0, 1],
    [2, 'id', '[]', 1, 1, 0, Number.NaN], [2, 'id', '[]', 1, 1, 0, 2 ** 60],
    [3, 'id', '[]', 1, 1, 0, 0]
  ]
  for (const raw of bad) t.throws(() => decodeGateReply(raw), /malformed portcullisGate reply/, JSON.stringify(raw) ?? String(raw))
  const circular: unknown[] = [9]
  circular.push(circular)
  t.throws(() => decodeGateReply(circular), /unknown status code/)
})

test('rateLimitHeaders: draft-ietf-httpapi-ratelimit-headers-11 strings', async (t) => {
  t.same(rateLimitHeaders({ burst: 100, policyWindow: 60, remaining: 42, resetSeconds: 17 }),
    { 'ratelimit-policy': '"default";q=100;w=60', ratelimit: '"default";r=42;t=17' })
  const limited = decodeGateReply([3, 'tok', '[]', 5, 120, 0, 9])
  if (limited.status !== 'limited') throw new Error('decoded wrong')
  t.same(rateLimitHeaders(limited), { 'ratelimit-policy': '"default";q=5;w=120', ratelimit: '"default";r=0;t=9' })
})

test('tokenKeys share one hash tag and accept only a digest', async (t) => {
  const d = 'ab'.repeat(32)
  t.same(tokenKeys('portcullis:', d), { record: `portcullis:{${d}}:token`, limiter: `portcullis:{${d}}:gcra` })
  t.same(tokenKeys('', d), { record: `{${d}}:token`, limiter: `{${d}}:gcra` })
  for (const bad of ['', 'pc_secretkey', 'AB'.repeat(32), 'ab'.repeat(31), 'ab'.repeat(33), `${'ab'.repeat(31)}}{`]) {
    t.throws(() => tokenKeys('p:', bad), TypeError, JSON.stringify(bad))
  }
})

test('the script is loaded from gcra.lua at import', async (t) => {
  t.equal(GCRA_COMMAND, 'portcullisGate')
  t.match(GCRA_SCRIPT, /redis\.call\('TIME'\)/)
  t.notMatch(GCRA_SCRIPT, /tostring\(/, 'numbers are never formatted with tostring')
})
