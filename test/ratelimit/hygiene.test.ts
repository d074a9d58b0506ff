// What the limiter leaves in Redis: a key that expires when the bucket is full again, nothing for
// unknown, expired or revoked tokens, and no write at all for a refused request.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { scanKeys, sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { TokenStore } from '../../src/tokens/store.js'
import { digestApiKey, tokenKeys } from '../../src/tokens/keys.js'

const PREFIX = 'hygiene:'
// Not a fault test: a loaded CI machine must not turn a slow Redis reply or a stalled event loop
// into a 503 here (the default 250 ms command timeout is tested in redis-faults.test.ts).
const PATIENT = { REDIS_COMMAND_TIMEOUT_MS: '5000', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' }
const redis = await sharedRedis()
const upstream = await new Upstream().start()
const gw = await startGateway({ REDIS_URL: redis.url, ROUTES: `/api=${upstream.url}`, REDIS_KEY_PREFIX: PREFIX, LOG_LEVEL: 'warn', ...PATIENT })
const client = new Redis(redis.url)
const store = new TokenStore(client, PREFIX)
t.teardown(async () => {
  client.disconnect()
  await gw.app.close()
  await upstream.close()
  await redis.close()
})

async function send (key: string, path = '/api/h'): Promise<{ status: number, t: number }> {
  const res = await request(gw.url + path, { headers: { authorization: `Bearer ${key}` } })
  await res.body.dump()
  const m = /;t=(\d+)$/.exec(String(res.headers.ratelimit))
  return { status: res.statusCode, t: Number(m?.[1]) }
}

async function limiterKeys (): Promise<string[]> {
  return await scanKeys(client, `${PREFIX}*:gcra`)
}

const limiterOf = (key: string): string => tokenKeys(PREFIX, digestApiKey(key)).limiter

t.test('the limiter key lives exactly until the bucket is full again', async (t) => {
  // rate 2 per 1 s, burst 2: T = 500 ms, a drained bucket is full again within 1 s.
  const token = await createTestToken(redis.url, { rate_limit: 2, window_seconds: 1 }, PREFIX)
  const key = limiterOf(token.key)
  t.equal((await send(token.key)).status, 200)
  const second = await send(token.key)
  t.equal(second.status, 200)
  const pttl = await client.pttl(key)
  t.ok(pttl > 0 && pttl <= 1000, `PTTL ${pttl} ms is > 0 and ≤ the 1 s to full`)
  t.ok(pttl <= second.t * 1000, `PTTL ${pttl} ms ≤ RateLimit t = ${second.t} s`)
  const started = Date.now()
  while ((await limiterKeys()).length > 0 && Date.now() - started < 5000) await sleep(25)
  const gone = Date.now() - started
  t.same(await limiterKeys(), [], 'no limiter key remains after the refill time')
  t.ok(gone <= 5000, `gone after ${gone} ms of idle`)
  t.comment(`limiter key gone ${gone} ms after the last request (PTTL was ${pttl} ms)`)
})

t.test('PTTL after one request of a slow policy is the emission interval: the time until full', async (t) => {
  // 20 per hour: T = 180 s; after one request the bucket is full again in 180 s.
  const token = await createTestToken(redis.url, { rate_limit: 20, window_seconds: 3600 }, PREFIX)
  const first = await send(token.key)
  t.equal(first.status, 200)
  t.equal(first.t, 180)
  const pttl = await client.pttl(limiterOf(token.key))
  t.ok(pttl > 175_000 && pttl <= 180_000, `PTTL ${pttl} ms ≈ 180 s and never above it`)
  const second = await send(token.key)
  const pttl2 = await client.pttl(limiterOf(token.key))
  t.equal(second.t, 360)
  t.ok(pttl2 > 355_000 && pttl2 <= 360_000, `after two requests PTTL ${pttl2} ms ≈ 360 s`)
})

t.test('unknown, expired and revoked tokens write no limiter key', async (t) => {
  for (const k of await limiterKeys()) await client.del(k)

  const unknown = 'pc_' + 'u'.repeat(40)
  const expired = await store.create({ rate_limit: 5, allowed_routes: ['/*'], expires_at: '2020-01-01T00:00:00Z' },
    Date.parse('2019-06-01T00:00:00Z'))
  const revoked = await store.create({ rate_limit: 5, allowed_routes: ['/*'] })
  t.ok(await store.revoke(revoked.id))

  for (let i = 0; i < 5; i++) {
    t.equal((await send(unknown)).status, 401, 'unknown')
    t.equal((await send(expired.api_key)).status, 401, 'expired')
    t.equal((await send(revoked.api_key)).status, 401, 'revoked')
  }
  t.same(await limiterKeys(), [], 'no limiter key at all')

  // A token revoked after use: revocation removes its limiter key, and refused requests write none.
  const used = await store.create({ rate_limit: 5, allowed_routes: ['/*'] })
  t.equal((await send(used.api_key)).status, 200)
  t.equal(await client.exists(limiterOf(used.api_key)), 1, 'the used token has a limiter key')
  t.ok(await store.revoke(used.id))
  t.equal(await client.exists(limiterOf(used.api_key)), 0, 'revoking removed it')
  for (let i = 0; i < 5; i++) t.equal((await send(used.api_key)).status, 401)
  t.same(await limiterKeys(), [], 'and refused requests did not bring it back')
})

t.test('a refused (429) request does not change the stored TAT or its expiry', async (t) => {
  const token = await createTestToken(redis.url, { rate_limit: 2, window_seconds: 3600 }, PREFIX)
  const key = limiterOf(token.key)
  t.equal((await send(token.key)).status, 200)
  t.equal((await send(token.key)).status, 200)
  const tat = await client.get(key)
  const pttl = await client.pttl(key)
  t.match(tat, /^\d{16}$/, 'the TAT is integer microseconds since the epoch')
  for (let i = 0; i < 10; i++) t.equal((await send(token.key)).status, 429)
  t.equal(await client.get(key), tat, 'TAT unchanged after 10 refused requests')
  t.ok(await client.pttl(key) <= pttl, 'expiry not extended')
})
