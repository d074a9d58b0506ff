// The auth and rate-limit decision counters are derived once per request, in onResponse, from the
// request's state (plugins/metrics.ts observeDecisions): every outcome of the proxy's admission is
// counted exactly once, and requests refused before the token check (400, 404) not at all.
import t from 'tap'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { RedisServer, sharedRedis } from './helpers/redis.js'
import { Upstream } from './helpers/upstream.js'
import { CALM, startGateway } from './helpers/gateway.js'
import { valueOf } from './helpers/prometheus.js'
import { createTestToken } from './helpers/tokens.js'
import { digestApiKey, tokenKeys } from '../src/tokens/keys.js'

const redis = await sharedRedis()
const upstream = await new Upstream().start()
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${upstream.url},/other=${upstream.url}` })
const admin = new Redis(redis.url)
t.teardown(async () => {
  admin.disconnect()
  await gw.app.close()
  await upstream.close()
  await redis.close()
})

const AUTH = ['allowed', 'missing', 'invalid', 'expired', 'forbidden', 'store_unavailable', 'other']
const LIMIT = ['allowed', 'limited', 'store_unavailable', 'other']

async function counts (): Promise<Record<string, number>> {
  const text = await (await request(gw.url + '/metrics')).body.text()
  const out: Record<string, number> = {}
  for (const r of AUTH) out[`auth:${r}`] = valueOf(text, 'portcullis_auth_decisions_total', { result: r })
  for (const r of LIMIT) out[`limit:${r}`] = valueOf(text, 'portcullis_ratelimit_decisions_total', { result: r })
  return out
}

/** Sends one request and returns its status and the counters that moved. */
async function outcome (path: string, authorization?: string): Promise<{ status: number, moved: Record<string, number> }> {
  const before = await counts()
  const res = await request(gw.url + path, { headers: authorization === undefined ? {} : { authorization } })
  await res.body.dump()
  const after = await counts()
  const moved: Record<string, number> = {}
  for (const k of Object.keys(after)) if (after[k] !== before[k]) moved[k] = (after[k] ?? 0) - (before[k] ?? 0)
  return { status: res.statusCode, moved }
}

t.test('each admission outcome moves exactly its counters, once', async (t) => {
  const good = await createTestToken(redis.url, { rate_limit: 1000, burst: 1000, window_seconds: 1 })
  const single = await createTestToken(redis.url, { rate_limit: 1, burst: 1, window_seconds: 3600 })
  const narrow = await createTestToken(redis.url, { rate_limit: 1000, burst: 1000, window_seconds: 1, allowed_routes: ['GET /other/*'] })
  const expiredKey = 'pc_decided' + 'e'.repeat(30)
  await admin.hset(tokenKeys('portcullis:', digestApiKey(expiredKey)).record, { id: 'tok_decidedxxxx', rate_limit: '5', expires_at_us: '1', allowed_routes: '["/*"]' })

  const cases: Array<[string, string, string | undefined, number, Record<string, number>]> = [
    ['allowed', '/api/a', good.bearer, 200, { 'auth:allowed': 1, 'limit:allowed': 1 }],
    ['missing token', '/api/a', undefined, 401, { 'auth:missing': 1 }],
    ['malformed header', '/api/a', 'Basic abc', 401, { 'auth:invalid': 1 }],
    ['unknown token', '/api/a', 'Bearer pc_' + 'u'.repeat(40), 401, { 'auth:invalid': 1 }],
    ['expired token', '/api/a', `Bearer ${expiredKey}`, 401, { 'auth:expired': 1 }],
    ['forbidden route', '/api/a', narrow.bearer, 403, { 'auth:forbidden': 1 }],
    ['first of one', '/api/a', single.bearer, 200, { 'auth:allowed': 1, 'limit:allowed': 1 }],
    ['rate limited', '/api/a', single.bearer, 429, { 'auth:allowed': 1, 'limit:limited': 1 }],
    ['no route', '/nowhere', good.bearer, 404, {}],
    ['bad path', '/api/%zz', good.bearer, 400, {}]
  ]
  for (const [name, path, authorization, status, moved] of cases) {
    const got = await outcome(path, authorization)
    t.equal(got.status, status, `${name}: ${status}`)
    t.same(got.moved, moved, `${name}: ${JSON.stringify(moved)}`)
  }
})

t.test('a stalled Redis counts one store_unavailable auth and one rate-limit decision', async (t) => {
  const own = await new RedisServer().start()
  const down = await startGateway({ REDIS_URL: own.url, REDIS_COMMAND_TIMEOUT_MS: '300', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0', ROUTES: `/api=${upstream.url}` })
  t.teardown(async () => { own.resume(); await down.app.close(); await own.close() })
  const good = await createTestToken(own.url, { rate_limit: 1000, burst: 1000, window_seconds: 1 })
  own.pause() // SIGSTOP: the gate's call times out after REDIS_COMMAND_TIMEOUT_MS
  const scrape = async (): Promise<string> => await (await request(down.url + '/metrics')).body.text()
  const before = await scrape()
  const res = await request(down.url + '/api/a', { headers: { authorization: good.bearer } })
  await res.body.dump()
  const after = await scrape()
  const delta = (name: string, result: string): number => valueOf(after, name, { result }) - valueOf(before, name, { result })
  t.equal(res.statusCode, 503)
  t.equal(delta('portcullis_auth_decisions_total', 'store_unavailable'), 1)
  t.equal(delta('portcullis_ratelimit_decisions_total', 'store_unavailable'), 1)
  t.equal(delta('portcullis_auth_decisions_total', 'allowed'), 0)
})
