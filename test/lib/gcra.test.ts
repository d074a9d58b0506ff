import { test } from 'tap'
import { createHash, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { RedisServer } from '../helpers/redis.js'
import { GCRA_COMMAND, GCRA_SCRIPT, type GateDecision, type GateResult } from '../../src/lib/gcra.js'
import { tokenKeys } from '../../src/tokens/keys.js'
import { decodeGateBatch, encodeGateBatch } from '../../src/lib/gate-batch.js'
import { routesRevision } from '../../src/tokens/record.js'

type Gate = (record: string, limiter: string, defaultWindow: number, cost: number, routesRev: string) => Promise<unknown>
type Keys = { record: string, limiter: string }
type GateFn = (keys: Keys, cost?: number, defaultWindow?: number, routesRev?: string) => Promise<GateResult>

const DEFAULT_WINDOW = 60

// Set by the outer test, which owns the redis-server and every client (its teardown closes them).
let server: RedisServer
let clients: Redis[] = []
let redis: Redis
let gate: GateFn
let rawGate: Gate

type Batch = (numberOfKeys: number, ...keysAndArgs: Array<string | number>) => Promise<unknown>

/** A client with the script defined exactly as the gateway defines it; each call is a batch of one check. */
function gateClient (): { redis: Redis, gate: GateFn, raw: Gate } {
  const r = server.client()
  clients.push(r)
  r.defineCommand(GCRA_COMMAND, { lua: GCRA_SCRIPT })
  const fn = (r as unknown as Record<string, Batch>)[GCRA_COMMAND]!.bind(r)
  const call = async (record: string, limiter: string, defaultWindow: number, cost: number, routesRev: string): Promise<unknown> => {
    const { keys, args } = encodeGateBatch(defaultWindow, null, [{ record, limiter, cost, routesRev }])
    return await fn(keys.length, ...keys, ...args)
  }
  return {
    redis: r,
    // The one check's own reply, as the script writes it.
    raw: async (...a) => ((await call(...a)) as unknown[])[2],
    gate: async (keys, cost = 1, defaultWindow = DEFAULT_WINDOW, routesRev = '') => {
      const reply = decodeGateBatch(await call(keys.record, keys.limiter, defaultWindow, cost, routesRev), [routesRev])
      if (reply.late) throw new Error('late without a deadline')
      const [result] = reply.results
      if (result instanceof Error) throw result
      return result as GateResult
    }
  }
}

/** Fresh keys and a stored record; `undefined` fields are left out of the hash. */
async function token (fields: Record<string, string | number | undefined>): Promise<Keys> {
  const keys = tokenKeys('portcullis:', createHash('sha256').update(randomUUID()).digest('hex'))
  const hash: Record<string, string> = { id: 'tok_' + randomUUID().slice(0, 8), name: 'test', allowed_routes: '["/api/*"]' }
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) delete hash[k]
    else hash[k] = String(v)
  }
  await redis.hset(keys.record, hash)
  return keys
}

async function redisNowUs (): Promise<number> {
  const [s, us] = await redis.time()
  return Number(s) * 1e6 + Number(us)
}

function decision (r: GateResult): GateDecision {
  if (r.status !== 'allowed' && r.status !== 'limited') throw new Error(`unexpected ${r.status}`)
  return r
}

test('gcra.lua against a real redis-server', async (t) => {
  server = await new RedisServer().start()
  t.teardown(async () => {
    for (const c of clients) c.disconnect()
    clients = []
    await server.close()
  })
  const first = gateClient()
  redis = first.redis
  gate = first.gate
  rawGate = first.raw

  await t.test('unknown token answers {0} and writes nothing', async (t) => {
    const keys = tokenKeys('portcullis:', 'a'.repeat(64))
    t.same(await gate(keys), { status: 'unknown' })
    t.equal(await redis.exists(keys.record, keys.limiter), 0)
    // A record without id (half-written or revoked) is unknown too.
    const noId = await token({ id: undefined, rate_limit: 5 })
    t.same(await gate(noId), { status: 'unknown' })
    t.equal(await redis.exists(noId.limiter), 0)
  })

  await t.test('expired token answers expired with its id and writes nothing; a future expiry admits', async (t) => {
    const now = await redisNowUs()
    const keys = await token({ id: 'tok_old', rate_limit: 5, expires_at_us: now - 1_000_000 })
    t.same(await gate(keys), { status: 'expired', id: 'tok_old' })
    t.equal(await redis.exists(keys.limiter), 0)
    const live = await token({ rate_limit: 5, expires_at_us: now + 3_600_000_000 })
    t.equal((await gate(live)).status, 'allowed')
  })

  await t.test('burst 5: exactly 5 back to back, remaining 4..0, the 6th limited and writing nothing', async (t) => {
    // T = 12 s, so no refill can happen while the test runs.
    const keys = await token({ id: 'tok_b5', rate_limit: 5, burst: 5, window_seconds: 60, allowed_routes: '["/a/*"]' })
    const seen: GateResult[] = []
    for (let i = 0; i < 5; i++) seen.push(await gate(keys))
    t.same(seen.map(r => r.status), Array(5).fill('allowed'))
    t.same(seen.map(r => decision(r).remaining), [4, 3, 2, 1, 0])
    t.same(seen.map(r => decision(r).resetSeconds), [12, 24, 36, 48, 60], 'seconds until full grow by T each')
    t.same(seen[0], { status: 'allowed', id: 'tok_b5', allowedRoutes: '["/a/*"]', routesRev: '', burst: 5, policyWindow: 60, remaining: 4, resetSeconds: 12 })

    const tatBefore = await redis.get(keys.limiter)
    const pttlBefore = await redis.pttl(keys.limiter)
    const sixth = decision(await gate(keys))
    t.equal(sixth.status, 'limited')
    t.equal(sixth.remaining, 0)
    t.equal(sixth.resetSeconds, 12, 'retry after one emission interval, rounded up')
    t.equal(await redis.get(keys.limiter), tatBefore, 'a refused request leaves the TAT alone')
    t.ok(await redis.pttl(keys.limiter) <= pttlBefore, 'and does not extend the TTL')
  })

  await t.test('limiter key TTL is the time until the bucket is full, never longer, never much shorter', async (t) => {
    const keys = await token({ rate_limit: 10, burst: 10, window_seconds: 10 }) // T = 1 s
    for (let i = 0; i < 3; i++) {
      const before = await redisNowUs()
      const r = decision(await gate(keys))
      const pttl = await redis.pttl(keys.limiter)
      const after = await redisNowUs()
      const tat = Number(await redis.get(keys.limiter))
      t.ok(Number.isSafeInteger(tat), `TAT stored as an integer (${tat})`)
      t.ok(pttl > 0, `pttl ${pttl} > 0`)
      t.ok(pttl <= Math.ceil((tat - before) / 1000), `pttl ${pttl} <= time until full ${(tat - before) / 1000} ms`)
      t.ok(pttl >= Math.floor((tat - after) / 1000) - 1, `pttl ${pttl} does not drop state early (${(tat - after) / 1000} ms)`)
      t.ok(pttl <= r.resetSeconds * 1000, 'within the advertised seconds until full')
    }
  })

  await t.test('after a drained burst (window 1 s, rate 10) the key is gone once the bucket has refilled', async (t) => {
    const keys = await token({ rate_limit: 10, burst: 10, window_seconds: 1 })
    const start = Date.now()
    for (let i = 0; i < 10; i++) t.equal((await gate(keys)).status, 'allowed')
    t.equal((await gate(keys)).status, 'limited')
    t.equal(await redis.exists(keys.limiter), 1)
    while (await redis.exists(keys.limiter) === 1 && Date.now() - start < 3000) await sleep(20)
    const gone = Date.now() - start
    t.equal(await redis.exists(keys.limiter), 0, `gone after ${gone} ms`)
    t.ok(gone >= 500, `not before the refill (${gone} ms)`)
    const fresh = decision(await gate(keys))
    t.equal(fresh.remaining, 9, 'a missing key is a full bucket')
  })

  await t.test('burst absent means rate_limit; window_seconds absent means the ARGV default', async (t) => {
    const noBurst = await token({ rate_limit: 3, window_seconds: 30 })
    const r = decision(await gate(noBurst))
    t.equal(r.burst, 3)
    t.equal(r.policyWindow, 30)
    t.equal(r.remaining, 2)
    for (let i = 0; i < 2; i++) t.equal((await gate(noBurst)).status, 'allowed')
    t.equal((await gate(noBurst)).status, 'limited')

    const noWindow = await token({ rate_limit: 2, burst: 2 })
    const d = decision(await gate(noWindow, 1, 40))
    t.equal(d.policyWindow, 40, 'w = ARGV window')
    t.equal(d.resetSeconds, 20, 'T = 40 s / 2')
    const own = await token({ rate_limit: 2, burst: 2, window_seconds: 10 })
    t.equal(decision(await gate(own, 1, 40)).policyWindow, 10, 'the token window wins over ARGV')
  })

  await t.test('policy window: burst = rate gives the window, burst = 2 x rate twice the window', async (t) => {
    t.equal(decision(await gate(await token({ rate_limit: 100, burst: 100, window_seconds: 60 }))).policyWindow, 60)
    t.equal(decision(await gate(await token({ rate_limit: 100, burst: 200, window_seconds: 60 }))).policyWindow, 120)
    t.equal(decision(await gate(await token({ rate_limit: 10, burst: 20, window_seconds: 1 }))).policyWindow, 2)
    // 60 s / 7 does not divide in µs: T rounds up, yet the policy still reads the configured window.
    t.equal(decision(await gate(await token({ rate_limit: 7, window_seconds: 60 }))).policyWindow, 60)
    t.equal(decision(await gate(await token({ rate_limit: 10, burst: 5, window_seconds: 60 }))).policyWindow, 30)
  })

  await t.test('a batch groups each token\'s checks: the same decisions as one call per check, in order', async (t) => {
    const fields = { rate_limit: 5, burst: 5, window_seconds: 60, allowed_routes: '["/a/*"]' }
    // The same sequence twice: once as one batch, once as one call per check, on fresh tokens.
    const plan: Array<[0 | 1, number]> = [[0, 1], [1, 1], [0, 1], [0, 2], [1, 3], [0, 1], [0, 0], [0, 1], [1, 1], [1, 1]]
    const batched = [await token({ ...fields, id: 'tok_x' }), await token({ ...fields, id: 'tok_y', burst: 4 })]
    const single = [await token({ ...fields, id: 'tok_x' }), await token({ ...fields, id: 'tok_y', burst: 4 })]
    const r = server.client()
    clients.push(r)
    r.defineCommand(GCRA_COMMAND, { lua: GCRA_SCRIPT })
    const fn = (r as unknown as Record<string, Batch>)[GCRA_COMMAND]!.bind(r)
    const checks = plan.map(([k, cost]) => ({ ...(batched[k] as Keys), cost, routesRev: '' }))
    const encoded = encodeGateBatch(DEFAULT_WINDOW, null, checks)
    t.equal(encoded.keys.length, 4, 'each token\'s keys once')
    const reply = decodeGateBatch(await fn(encoded.keys.length, ...encoded.keys, ...encoded.args), encoded.order.map(() => ''))
    if (reply.late) throw new Error('late without a deadline')
    const fromBatch: unknown[] = []
    reply.results.forEach((res, k) => { fromBatch[encoded.order[k] as number] = res instanceof Error ? 'error' : res })
    const fromSingle: unknown[] = []
    for (const [k, cost] of plan) fromSingle.push(await gate(single[k] as Keys, cost).catch(() => 'error'))
    t.same(fromBatch, fromSingle)
    t.same((fromBatch as GateDecision[]).map((x) => typeof x === 'string' ? x : `${x.status}:${x.remaining}`),
      ['allowed:4', 'allowed:3', 'allowed:3', 'allowed:1', 'allowed:0', 'allowed:0', 'error', 'limited:0', 'limited:0', 'limited:0'],
      'x: 1, 1, 2, 1 admitted, cost 0 refused alone, then limited; y: 1 and 3 drain its 4')
    const tat = async (k: Keys): Promise<number> => Number(await redis.get(k.limiter)) - await redisNowUs()
    const [tb, ts] = [await tat(batched[0] as Keys), await tat(single[0] as Keys)]
    t.ok(Math.abs(tb - ts) < 2_000_000 && tb > 55_000_000, `the batch left the TAT the single calls did (${tb} vs ${ts} µs ahead)`)
  })

  await t.test('cost > 1 consumes that many emission intervals', async (t) => {
    const keys = await token({ rate_limit: 5, burst: 5, window_seconds: 60 })
    t.equal(decision(await gate(keys, 3)).remaining, 2)
    const r = decision(await gate(keys, 3))
    t.equal(r.status, 'limited')
    t.equal(r.resetSeconds, 12, 'one more interval must drain before 3 fit again')
    t.equal(decision(await gate(keys, 2)).remaining, 0)
  })

  await t.test('the boundary new - now = DVT admits; T rounds up', async (t) => {
    // Real calls are microseconds apart, which hides `<` vs `<=`; one call of cost = burst on a
    // full bucket lands exactly on DVT whatever the clock does.
    const full = decision(await gate(await token({ rate_limit: 5, burst: 5, window_seconds: 60 }), 5))
    t.same([full.status, full.remaining, full.resetSeconds], ['allowed', 0, 60])
    const one = await token({ rate_limit: 1, burst: 1, window_seconds: 60 })
    t.equal((await gate(one)).status, 'allowed', 'burst 1 admits one')
    t.equal((await gate(one)).status, 'limited', 'and only one')
    // 1 s / 600000 = 1.67 µs: T = 2 µs, so 1e6 units need 2 s, never 1.
    const r = decision(await gate(await token({ rate_limit: 600_000, burst: 1, window_seconds: 1 }), 1_000_000))
    t.same([r.status, r.resetSeconds], ['limited', 2])
  })

  await t.test('huge rate_limit (1e9 per second) gives no invalid expire time', async (t) => {
    const keys = await token({ rate_limit: 1e9, window_seconds: 1 })
    for (let i = 0; i < 20; i++) {
      const r = decision(await gate(keys))
      t.equal(r.status, 'allowed')
      t.equal(r.policyWindow, 1)
      t.ok(r.remaining >= 1e9 - 21, `T = 1 µs, remaining ${r.remaining}`)
    }
    const tight = await token({ rate_limit: 1e9, burst: 1, window_seconds: 1 })
    t.match((await gate(tight)).status, /^(allowed|limited)$/)
  })

  await t.test('a year-long window stores an exact integer TAT; a refill time beyond 2^52 µs is refused', async (t) => {
    const keys = await token({ rate_limit: 1, burst: 100, window_seconds: 31_536_000 }) // DVT ≈ 3.15e15 µs
    const before = await redisNowUs()
    const r = decision(await gate(keys))
    const after = await redisNowUs()
    const stored = await redis.get(keys.limiter)
    t.match(stored, /^[0-9]{16}$/, `TAT written with every digit: ${stored}`)
    t.ok(Number(stored) - before >= 31_536_000e6 && Number(stored) - after <= 31_536_000e6, 'TAT = now + T')
    t.equal(r.remaining, 99)
    t.equal(r.policyWindow, 3_153_600_000)
    t.ok(await redis.pttl(keys.limiter) > 31_535_000_000, 'TTL of a year in ms accepted')
    const tooBig = await token({ rate_limit: 1, burst: 1_000_000, window_seconds: 31_536_000 })
    await t.rejects(gate(tooBig), /PORTCULLIS_BAD_RECORD/)
    t.equal(await redis.exists(tooBig.limiter), 0)
    // Before 1970 is simply expired, not malformed.
    t.same(await gate(await token({ id: 'tok_1969', rate_limit: 1, expires_at_us: -1 })), { status: 'expired', id: 'tok_1969' })
  })

  await t.test('a malformed record is an error, not a pass, and writes nothing', async (t) => {
    for (const fields of [{ rate_limit: 'abc' }, { rate_limit: 0 }, { rate_limit: 5, burst: 1.5 }, { rate_limit: 5, expires_at_us: 'soon' }, { rate_limit: undefined }]) {
      const keys = await token(fields)
      await t.rejects(gate(keys), /PORTCULLIS_BAD_RECORD/, JSON.stringify(fields))
      t.equal(await redis.exists(keys.limiter), 0)
    }
    await t.rejects(gate(await token({ rate_limit: 5 }), 0), /PORTCULLIS_BAD_RECORD/, 'cost 0')
    await t.rejects(gate(await token({ rate_limit: 5 }), 1, 0), /PORTCULLIS_BAD_RECORD/, 'window 0')
  })

  await t.test('routes_rev: the routes travel only when the caller\'s revision is stale or absent', async (t) => {
    const routes = '["/a/*","GET /b"]'
    const rev = routesRevision(routes)
    const keys = await token({ rate_limit: 1000, allowed_routes: routes, routes_rev: rev })
    const slots = async (known: string): Promise<unknown[]> => {
      const raw = await rawGate(keys.record, keys.limiter, DEFAULT_WINDOW, 1, known)
      return (raw as unknown[]).slice(0, 4)
    }
    t.same(await slots(''), [2, await redis.hget(keys.record, 'id'), routes, rev], 'none held: routes and revision')
    t.same(await slots('0123456789abcdef'), [2, await redis.hget(keys.record, 'id'), routes, rev], 'stale: routes and revision')
    // Current: no routes; the decision travels as one string 'code,rev,burst,w,remaining,t,id'.
    const current = await rawGate(keys.record, keys.limiter, DEFAULT_WINDOW, 1, rev)
    t.type(current, 'string', 'current: the compact decision')
    t.match(current as string, new RegExp(`^2,${rev},1000,${DEFAULT_WINDOW},\\d+,\\d+,${await redis.hget(keys.record, 'id') as string}$`), 'current: code, revision, counts, id; no routes')
    const unchanged = decision(await gate(keys, 1, DEFAULT_WINDOW, rev))
    t.equal(unchanged.allowedRoutes, null, 'decoded as "unchanged"')
    t.equal(unchanged.routesRev, rev)

    // An edit changes the revision: the caller's copy is stale on the very next call.
    const edited = '["/c/*"]'
    await redis.hset(keys.record, { allowed_routes: edited, routes_rev: routesRevision(edited) })
    t.same(await slots(rev), [2, await redis.hget(keys.record, 'id'), edited, routesRevision(edited)])

    // Limited replies follow the same rule.
    const one = await token({ rate_limit: 1, burst: 1, window_seconds: 3600, allowed_routes: routes, routes_rev: rev })
    t.equal((await gate(one)).status, 'allowed')
    const limited = await rawGate(one.record, one.limiter, DEFAULT_WINDOW, 1, rev)
    t.match(limited, new RegExp(`^3,${rev},1,3600,0,\\d+,`), 'limited and current: the compact decision')
    t.same(((await rawGate(one.record, one.limiter, DEFAULT_WINDOW, 1, '')) as unknown[]).slice(2, 4), [routes, rev])
  })

  await t.test('a record without a usable routes_rev sends its routes every time, revision \'\'', async (t) => {
    const routes = '["/a/*"]'
    const rev = routesRevision(routes)
    const cases: Array<[string, Record<string, string | undefined>, string]> = [
      ['written before routes_rev existed', {}, routes],
      ['empty routes_rev', { routes_rev: '' }, routes],
      ['not 16 hex digits', { routes_rev: rev.toUpperCase() }, routes],
      ['too long', { routes_rev: rev + '0' }, routes],
      // A revision beside absent routes vouches for nothing: they read as none, and travel.
      ['routes_rev without allowed_routes', { allowed_routes: undefined, routes_rev: rev }, '[]'],
      ['routes_rev beside empty allowed_routes', { allowed_routes: '', routes_rev: rev }, '[]']
    ]
    for (const [label, fields, want] of cases) {
      const keys = await token({ rate_limit: 1000, allowed_routes: routes, ...fields })
      for (const known of ['', rev, rev.toUpperCase(), fields.routes_rev ?? '']) {
        const raw = await rawGate(keys.record, keys.limiter, DEFAULT_WINDOW, 1, known) as unknown[]
        t.same(raw.slice(2, 4), [want, ''], `${label}, caller holds ${JSON.stringify(known)}`)
      }
    }
  })

  await t.test('SCRIPT FLUSH: the next call still works (ioredis falls back to EVAL)', async (t) => {
    const keys = await token({ rate_limit: 5 })
    t.equal(decision(await gate(keys)).remaining, 4)
    t.equal(await redis.script('FLUSH'), 'OK')
    t.equal(decision(await gate(keys)).remaining, 3)
  })

  await t.test('concurrency: 3 clients firing 3 x burst at once admit exactly burst, 10 times over', async (t) => {
    const gates = [gateClient().gate, gateClient().gate, gateClient().gate]
    const burst = 8
    const admitted: number[] = []
    for (let round = 0; round < 10; round++) {
      const keys = await token({ rate_limit: burst, burst, window_seconds: 3600 }) // T = 450 s: no refill
      const calls = []
      for (let i = 0; i < 3 * burst; i++) calls.push(gates[i % 3]!(keys))
      const results = await Promise.all(calls)
      admitted.push(results.filter(r => r.status === 'allowed').length)
      const remaining = results.filter(r => r.status === 'allowed').map(r => decision(r).remaining).sort((a, b) => a - b)
      t.same(remaining, [...Array(burst).keys()], `round ${round}: each remaining value once`)
    }
    t.same(admitted, Array(10).fill(burst))
  })

  await t.test('sustained: burst 2, rate 20 per second admits about elapsed / 50 ms after draining', async (t) => {
    const keys = await token({ rate_limit: 20, burst: 2, window_seconds: 1 })
    const first = await gate(keys)
    const second = await gate(keys)
    t.same([first.status, second.status], ['allowed', 'allowed'])
    const start = performance.now()
    let admitted = 0
    let calls = 0
    while (performance.now() - start < 1000) {
      if ((await gate(keys)).status === 'allowed') admitted++
      calls++
      await sleep(5)
    }
    const elapsed = performance.now() - start
    const expected = elapsed / 50
    t.ok(Math.abs(admitted - expected) <= 2, `admitted ${admitted} of ${calls} calls in ${elapsed.toFixed(0)} ms (expected ~${expected.toFixed(1)})`)
  })
})
