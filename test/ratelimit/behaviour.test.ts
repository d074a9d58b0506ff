// What a client sees of the limiter: RateLimit / RateLimit-Policy across a burst, Retry-After
// that is honest, the sustained rate, and which refusals consume quota (403) or never touch the
// limiter at all (400, 404, 401).
import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { scanKeys, sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { digestApiKey, tokenKeys } from '../../src/tokens/keys.js'
import { Redis } from 'ioredis'

const PREFIX = 'behaviour:'
// Not a fault test: a loaded CI machine must not turn a slow Redis reply or a stalled event loop
// into a 503 here (the default 250 ms command timeout is tested in redis-faults.test.ts).
const PATIENT = { REDIS_COMMAND_TIMEOUT_MS: '5000', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' }
const redis = await sharedRedis()
const upstream = await new Upstream().start()
const gw = await startGateway({ REDIS_URL: redis.url, ROUTES: `/api=${upstream.url}`, REDIS_KEY_PREFIX: PREFIX, LOG_LEVEL: 'warn', ...PATIENT })
const client = new Redis(redis.url)
t.teardown(async () => {
  client.disconnect()
  await gw.app.close()
  await upstream.close()
  await redis.close()
})

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, code?: string }

async function send (path: string, authorization?: string): Promise<Answer> {
  const res = await request(gw.url + path, { headers: authorization === undefined ? {} : { authorization } })
  const text = await res.body.text()
  const code = res.statusCode === 200 ? undefined : (JSON.parse(text) as { code: string }).code
  return { status: res.statusCode, headers: res.headers, code }
}

/** `"default";r=R;t=T` → {r, t}; fails the parse (NaN) on anything else. */
function rateLimit (h: Answer['headers']): { r: number, t: number } {
  const m = /^"default";r=(\d+);t=(\d+)$/.exec(String(h.ratelimit))
  return { r: Number(m?.[1]), t: Number(m?.[2]) }
}

async function limiterKeys (): Promise<string[]> {
  return await scanKeys(client, `${PREFIX}*:gcra`)
}

t.test('RateLimit counts down B-1 … 0 across a burst; RateLimit-Policy names q=B and w', async (t) => {
  const token = await createTestToken(redis.url, { rate_limit: 5, window_seconds: 60 }, PREFIX)
  const seen: Array<{ r: number, t: number }> = []
  for (let i = 1; i <= 5; i++) {
    const a = await send('/api/burst', token.bearer)
    t.equal(a.status, 200, `request ${i} admitted`)
    t.equal(a.headers['ratelimit-policy'], '"default";q=5;w=60', `request ${i} policy`)
    seen.push(rateLimit(a.headers))
  }
  t.same(seen.map((s) => s.r), [4, 3, 2, 1, 0], 'remaining counts down to 0')
  // T = 12 s: after k requests the bucket is full again in k·T (minus the few ms since the first).
  seen.forEach((s, i) => t.ok(s.t <= 12 * (i + 1) && s.t >= 12 * (i + 1) - 1, `t=${s.t} after ${i + 1} requests`))
  const refused = await send('/api/burst', token.bearer)
  t.equal(refused.status, 429)
  t.equal(refused.code, 'RATE_LIMITED')
  t.equal(refused.headers['ratelimit-policy'], '"default";q=5;w=60', 'the 429 carries the policy too')
  t.equal(rateLimit(refused.headers).r, 0)
})

t.test('burst below rate_limit: q is the burst and w the seconds to refill it', async (t) => {
  const token = await createTestToken(redis.url, { rate_limit: 10, burst: 3, window_seconds: 60 }, PREFIX)
  const rs: number[] = []
  for (let i = 0; i < 3; i++) {
    const a = await send('/api/small', token.bearer)
    t.equal(a.status, 200)
    t.equal(a.headers['ratelimit-policy'], '"default";q=3;w=18', 'q = burst, w = burst · window / rate_limit')
    rs.push(rateLimit(a.headers).r)
  }
  t.same(rs, [2, 1, 0])
  t.equal((await send('/api/small', token.bearer)).status, 429, 'the burst+1-th request is refused')
})

t.test('a 429 has Retry-After = t of its RateLimit, and a request after Retry-After seconds passes', async (t) => {
  // rate 2 per 2 s: T = 1 s, burst 2, so the third request of a burst must wait about 1 s.
  const token = await createTestToken(redis.url, { rate_limit: 2, window_seconds: 2 }, PREFIX)
  t.equal((await send('/api/retry', token.bearer)).status, 200)
  t.equal((await send('/api/retry', token.bearer)).status, 200)
  const refused = await send('/api/retry', token.bearer)
  t.equal(refused.status, 429)
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 2, `Retry-After ${retryAfter} is a whole number of seconds near T`)
  t.equal(rateLimit(refused.headers).t, retryAfter, 'RateLimit t names the same moment as Retry-After')
  t.equal(rateLimit(refused.headers).r, 0)
  const forwarded = upstream.seen.length
  await sleep(retryAfter * 1000)
  const again = await send('/api/retry', token.bearer)
  t.equal(again.status, 200, 'admitted once Retry-After has passed')
  t.equal(upstream.seen.length, forwarded + 1, 'and forwarded')
})

interface Sustained { admitted: number, sent: number, elapsed: number, maxGap: number }

/** Drains the bucket (until a 429), then sends every ~25 ms for ~2 s without waiting for answers. */
async function sustained (t: Test, bearer: string, path: string): Promise<Sustained> {
  let drained = false
  for (let i = 0; i < 10 && !drained; i++) drained = (await send(path, bearer)).status === 429
  t.ok(drained, 'the burst is drained')
  const pending: Array<Promise<number>> = []
  const sentAt: number[] = []
  const start = performance.now()
  while (performance.now() - start < 2000) {
    sentAt.push(performance.now())
    pending.push(send(path, bearer).then((a) => a.status))
    await sleep(25)
  }
  const statuses = await Promise.all(pending)
  t.same(statuses.filter((s) => s !== 200 && s !== 429), [], 'only 200 and 429')
  const gaps = sentAt.slice(1).map((at, i) => at - (sentAt[i] as number))
  return {
    admitted: statuses.filter((s) => s === 200).length,
    sent: statuses.length,
    elapsed: (sentAt[sentAt.length - 1] as number) - (sentAt[0] as number),
    maxGap: Math.max(...gaps)
  }
}

t.test('sustained rate: after the burst, one request per emission interval T is admitted', async (t) => {
  const T = 100 // 10 per second
  // burst 2: the bucket never fills between arrivals ~25 ms apart, so admissions are exactly T apart.
  const two = await createTestToken(redis.url, { rate_limit: 10, burst: 2, window_seconds: 1 }, PREFIX)
  const b2 = await sustained(t, two.bearer, '/api/rate2')
  t.comment(`burst 2: ${b2.sent} sent over ${Math.round(b2.elapsed)} ms (max gap ${Math.round(b2.maxGap)} ms), ${b2.admitted} admitted, elapsed/T = ${(b2.elapsed / T).toFixed(1)}`)
  t.ok(Math.abs(b2.admitted - b2.elapsed / T) <= 2, `burst 2: admitted ${b2.admitted} ≈ elapsed/T ${(b2.elapsed / T).toFixed(1)} ± 2`)

  // burst 1 has no tolerance at all: a request is admitted only once TAT has passed, so each
  // admission also waits for the next arrival after TAT (up to one gap between sends). The
  // sustained rate can never exceed 1/T; it may fall short of it by that lag.
  const one = await createTestToken(redis.url, { rate_limit: 10, burst: 1, window_seconds: 1 }, PREFIX)
  const b1 = await sustained(t, one.bearer, '/api/rate1')
  t.comment(`burst 1: ${b1.sent} sent over ${Math.round(b1.elapsed)} ms (max gap ${Math.round(b1.maxGap)} ms), ${b1.admitted} admitted, elapsed/T = ${(b1.elapsed / T).toFixed(1)}`)
  t.ok(b1.admitted <= b1.elapsed / T + 2, `burst 1: admitted ${b1.admitted} ≤ elapsed/T ${(b1.elapsed / T).toFixed(1)} + 2`)
  const floor = b1.elapsed / (T + b1.maxGap) - 2
  t.ok(b1.admitted >= floor, `burst 1: admitted ${b1.admitted} ≥ elapsed/(T + max gap) - 2 = ${floor.toFixed(1)}`)
})

t.test('a 403 consumes one unit of quota (as docs/design-notes.md says)', async (t) => {
  const token = await createTestToken(redis.url, { rate_limit: 3, window_seconds: 3600, allowed_routes: ['/api/allowed/*'] }, PREFIX)
  const forbidden = await send('/api/other', token.bearer)
  t.equal(forbidden.status, 403)
  t.equal(forbidden.code, 'ROUTE_FORBIDDEN')
  const first = await send('/api/allowed/1', token.bearer)
  t.equal(first.status, 200)
  t.equal(rateLimit(first.headers).r, 1, 'one unit went to the 403, one to this request')
  t.equal((await send('/api/allowed/2', token.bearer)).status, 200)
  t.equal((await send('/api/allowed/3', token.bearer)).status, 429, 'the third allowed request is over the limit')
})

t.test('400, 404 and 401 never touch the limiter: no limiter key is written', async (t) => {
  for (const key of await limiterKeys()) await client.del(key) // earlier tests' keys
  const token = await createTestToken(redis.url, { rate_limit: 5, window_seconds: 3600 }, PREFIX)
  const unknown = 'Bearer pc_' + 'x'.repeat(40)
  const cases: Array<[string, string | undefined, number, string]> = [
    ['/nope', token.bearer, 404, 'ROUTE_NOT_FOUND'],
    ['/api/a%2Fb', token.bearer, 400, 'BAD_PATH'],
    ['/api/x', unknown, 401, 'TOKEN_INVALID'],
    ['/api/x', undefined, 401, 'TOKEN_MISSING'],
    ['/api/x', 'Bearer two words', 401, 'TOKEN_INVALID'],
    ['/api/x', 'Basic dXNlcjpwYXNz', 401, 'TOKEN_INVALID']
  ]
  for (let round = 0; round < 10; round++) {
    for (const [path, auth, status, code] of cases) {
      const a = await send(path, auth)
      if (round === 0) {
        t.equal(a.status, status, `${path} ${String(auth).slice(0, 12)}`)
        t.equal(a.code, code)
        t.equal(a.headers.ratelimit, undefined, 'no RateLimit header on a refusal before the limiter')
      }
    }
  }
  t.same(await limiterKeys(), [], 'no limiter key after 60 refused requests')
  const limiter = tokenKeys(PREFIX, digestApiKey(token.key)).limiter
  const ok = await send('/api/x', token.bearer)
  t.equal(ok.status, 200)
  t.equal(rateLimit(ok.headers).r, 4, 'the full bucket was untouched by the 404 and 400')
  t.same(await limiterKeys(), [limiter], 'the first admitted request writes the (only) limiter key')
})
