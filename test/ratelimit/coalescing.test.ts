// The gate coalesces the checks of one event-loop tick into one script call (plugins/gate.ts):
// counted by Redis itself (INFO commandstats) on a private single node, with each check still
// getting its own answer and duplicates of one token applied in order.
import { createHook } from 'node:async_hooks'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Agent, request } from 'undici'
import type { Redis } from 'ioredis'
import { RedisServer } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { CALM, startGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { digestApiKey, tokenKeys } from '../../src/tokens/keys.js'
import { GATE_HOLD_MS } from '../../plugins/gate.js'

const server = await new RedisServer().start()
const upstream = await new Upstream().start()
const gw = await startGateway({ REDIS_URL: server.url, ROUTES: `/api=${upstream.url}`, LOG_LEVEL: 'warn', ...CALM })
const admin = server.client()
const agent = new Agent({ connections: 200, pipelining: 1 })
t.teardown(async () => {
  admin.disconnect()
  await agent.close()
  await gw.app.close()
  await upstream.close()
  await server.close()
})

/** Script calls and every other command Redis ran during `traffic` (background PINGs apart). */
async function counted (r: Redis, traffic: () => Promise<void>): Promise<{ script: number, others: Record<string, number> }> {
  await r.config('RESETSTAT')
  await traffic()
  const stats: Record<string, number> = {}
  for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) stats[m[1] as string] = Number(m[2])
  const script = (stats.evalsha ?? 0) + (stats.eval ?? 0)
  const others = Object.fromEntries(Object.entries(stats).filter(([n]) => !/^(evalsha|eval|ping|info|config\|resetstat)$/.test(n)))
  return { script, others }
}

async function get (path: string, authorization: string): Promise<{ status: number, code: string | null, ratelimit: string | undefined }> {
  const res = await request(gw.url + path, { dispatcher: agent, headers: { authorization } })
  const text = await res.body.text()
  return {
    status: res.statusCode,
    code: res.statusCode === 200 ? null : (JSON.parse(text) as { code?: string }).code ?? null,
    ratelimit: res.headers.ratelimit as string | undefined
  }
}

t.test('200 concurrent requests: at most one script call per request, fewer than requests, and no other command', async (t) => {
  const token = await createTestToken(server.url)
  // Open the connections first, so the measured requests arrive together rather than behind handshakes.
  await Promise.all(Array.from({ length: 200 }, async (_, i) => await get(`/api/warm/${i}`, token.bearer)))
  const forwarded = upstream.seen.length
  let statuses: number[] = []
  const c = await counted(admin, async () => {
    statuses = (await Promise.all(Array.from({ length: 200 }, async (_, i) => await get(`/api/many/${i}`, token.bearer)))).map((a) => a.status)
  })
  t.same([...new Set(statuses)], [200], 'every request admitted')
  t.equal(upstream.seen.length, forwarded + 200, 'every request forwarded')
  t.ok(c.script > 0 && c.script <= 200, `${c.script} script calls for 200 requests (at most one each)`)
  t.ok(c.script < 200, `batched: ${c.script} calls < 200 requests`)
  // Inside the script: the clock once per call; the record, TAT read and TAT write once per token
  // in a call (one token here), however many of its checks the call carries.
  t.same(c.others, { time: c.script, hmget: c.script, get: c.script, set: c.script }, 'nothing but what the script calls explain')
  t.comment(`200 concurrent requests → ${c.script} script calls (${(200 / c.script).toFixed(1)} checks per call)`)
})

t.test('two checks of one burst-1 token in one batch: one allowed, one limited, in one script call', async (t) => {
  const token = await createTestToken(server.url, { rate_limit: 1, burst: 1, window_seconds: 3600 })
  const digest = digestApiKey(token.key)
  let results: Array<{ status: string, remaining?: number }> = []
  const c = await counted(admin, async () => {
    // Issued in the same tick: the gate sends them as one call.
    results = await Promise.all([gw.app.gate.check(digest), gw.app.gate.check(digest)])
  })
  t.equal(c.script, 1, 'one script call')
  t.same(results.map((r) => r.status), ['allowed', 'limited'], 'applied in order')
  t.equal(results[0]?.remaining, 0)
  t.ok(/^[0-9]+$/.test(await admin.get(tokenKeys('portcullis:', digest).limiter) ?? ''), 'one TAT written')
})

t.test('burst 1 over HTTP, 10 concurrent requests: exactly one 200, nine 429', async (t) => {
  const token = await createTestToken(server.url, { rate_limit: 1, burst: 1, window_seconds: 3600 })
  const before = upstream.seen.length
  const answers = await Promise.all(Array.from({ length: 10 }, async (_, i) => await get(`/api/dup/${i}`, token.bearer)))
  t.equal(answers.filter((a) => a.status === 200).length, 1)
  t.equal(answers.filter((a) => a.status === 429 && a.code === 'RATE_LIMITED').length, 9)
  t.equal(upstream.seen.length, before + 1)
})

t.test('one batch, many outcomes: unknown, expired, corrupt and good tokens each get their own answer', async (t) => {
  const good = await createTestToken(server.url, { rate_limit: 5, burst: 5, window_seconds: 3600 })
  const limited = await createTestToken(server.url, { rate_limit: 1, burst: 1, window_seconds: 3600 })
  await get('/api/spend', limited.bearer)
  const expiredKey = 'pc_expired' + 'e'.repeat(30)
  const corruptKey = 'pc_corrupt' + 'c'.repeat(30)
  const { record: expiredRecord } = tokenKeys('portcullis:', digestApiKey(expiredKey))
  const { record: corruptRecord, limiter: corruptLimiter } = tokenKeys('portcullis:', digestApiKey(corruptKey))
  await admin.hset(expiredRecord, { id: 'tok_expiredxxxx', rate_limit: '5', expires_at_us: '1', allowed_routes: '["/*"]' })
  await admin.hset(corruptRecord, { id: 'tok_corruptxxxx', rate_limit: 'many', allowed_routes: '["/*"]' })
  const check = async (d: string): Promise<string> => await gw.app.gate.check(d).then((r) => r.status, (e: { code?: string }) => e.code ?? 'error')
  let direct: string[] = []
  const c = await counted(admin, async () => {
    direct = await Promise.all([check(digestApiKey(good.key)), check(digestApiKey('pc_unknown' + 'u'.repeat(30))),
      check(digestApiKey(expiredKey)), check(digestApiKey(corruptKey)), check(digestApiKey(limited.key)), check(digestApiKey(good.key))])
  })
  t.equal(c.script, 1, 'six checks, one script call')
  t.same(direct, ['allowed', 'unknown', 'expired', 'STORE_UNAVAILABLE', 'limited', 'allowed'], 'each check its own result; a corrupt record is a 503 for it alone')
  t.equal(await admin.exists(corruptLimiter), 0, 'the corrupt record wrote nothing')

  // The same over HTTP, all at once: the route check (403) happens per request on the shared reply.
  const narrow = await createTestToken(server.url, { rate_limit: 5, allowed_routes: ['/api/only/*'] })
  const answers = await Promise.all([
    get('/api/mix/1', good.bearer), get('/api/mix/2', 'Bearer pc_unknown' + 'u'.repeat(30)), get('/api/mix/3', `Bearer ${expiredKey}`),
    get('/api/mix/4', `Bearer ${corruptKey}`), get('/api/mix/5', limited.bearer), get('/api/elsewhere', narrow.bearer), get('/api/only/x', narrow.bearer)
  ])
  t.same(answers.map((a) => `${a.status} ${a.code ?? ''}`), ['200 ', '401 TOKEN_INVALID', '401 TOKEN_EXPIRED', '503 STORE_UNAVAILABLE', '429 RATE_LIMITED', '403 ROUTE_FORBIDDEN', '200 '])
  t.equal(answers[0]?.ratelimit, '"default";r=2;t=2160', 'the good token: its third unit of five (T = 720 s)')
})

t.test('a check held while a call is out: once the call is answered and the check sent, its GATE_HOLD_MS bound is cleared, not left to wake the event loop', async (t) => {
  const digest = digestApiKey((await createTestToken(server.url)).key)
  await gw.app.gate.check(digest) // key names cached, clock learnt: nothing else is in flight below
  await sleep(GATE_HOLD_MS * 5) // any bound of the tests before has run out
  // Timers made from here on. A timer that ran is _destroyed with its delay kept in _idleTimeout;
  // clearTimeout sets _idleTimeout to -1.
  type Timer = { _idleTimeout: number, _destroyed: boolean }
  const made: Array<{ ms: number, at: number, timer: Timer }> = []
  const hook = createHook({
    init (_id, type, _trigger, resource) {
      if (type === 'Timeout') made.push({ ms: (resource as Timer)._idleTimeout, at: performance.now(), timer: resource as Timer })
    }
  }).enable()
  // A round decides only when the second check was held (its flush came within GATE_HOLD_MS of the
  // first call, before the reply) and Redis answered before the bound ran out (a slower Redis is
  // meant to see the bound run): on a loaded machine that may take a few rounds.
  const cleared: boolean[] = []
  let rounds = 0
  try {
    while (rounds < 50 && cleared.length === 0) {
      rounds++
      made.length = 0
      const first = gw.app.gate.check(digest)
      await nextTurn() // the gate's setImmediate ran first: the call of `first` is out
      const held = gw.app.gate.check(digest)
      await nextTurn() // its slot's call is out: held, with a bound
      const bound = made.find((m) => m.ms > 0 && m.ms <= GATE_HOLD_MS)
      await first
      const answeredInTime = bound !== undefined && !bound.timer._destroyed
      await nextTurn()
      await nextTurn() // the flush that the answer scheduled has run: `held` went out in a call of its own
      if (bound !== undefined && answeredInTime && performance.now() - bound.at < bound.ms) cleared.push(bound.timer._idleTimeout === -1)
      await held
      await sleep(GATE_HOLD_MS * 2)
    }
  } finally {
    hook.disable()
  }
  t.comment(`decided in round ${rounds}`)
  t.same(cleared, [true], 'Redis answered within the bound, and the bound was cleared before it could run')
})
