// Revocation, expiry and edits take effect on the very next request (docs/tokens.md), on a real Redis;
// unknown, expired and revoked tokens write nothing.
import t from 'tap'
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { CALM, startGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection, rawRequest, header, json, type RawResponse } from '../helpers/raw-http.js'
import { credentialLeaks } from '../helpers/leaks.js'
import { TokenStore } from '../../src/tokens/store.js'
import { digestApiKey, tokenLimiterKey, tokenRecordKey } from '../../src/tokens/keys.js'

const PREFIX = 'portcullis:'
const redis = await sharedRedis()
const r = new Redis(redis.url, { maxRetriesPerRequest: 1 })
const store = new TokenStore(r, PREFIX)
const up = await new Upstream().start()
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${up.url},/api/v1/products=${up.url}` })
const KEYS: string[] = []
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  r.disconnect()
  await redis.close()
})

function get (key: string, target = '/api/v1/users/1'): string {
  return `GET ${target} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${key}\r\n\r\n`
}
const code = (res: RawResponse): unknown => res.status === 200 ? 'OK' : json(res).code
/** A fresh import key of the RFC 6750 alphabet. */
const importKey = (): string => {
  const k = 'imp-' + randomBytes(18).toString('base64url')
  KEYS.push(k)
  return k
}

t.test('a revoked token is refused on the very next request, also on a kept-alive connection', async (t) => {
  const tok = await createTestToken(redis.url, {}, PREFIX)
  KEYS.push(tok.key)
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  t.equal((await c.request(get(tok.key))).status, 200)
  t.equal(await store.revoke(tok.id), true)
  const res = await c.request(get(tok.key))
  t.equal(res.status, 401, 'the next request on the same connection')
  t.equal(json(res).code, 'TOKEN_INVALID')
  t.match(header(res, 'www-authenticate'), /^Bearer/)
  t.equal(await r.exists(tokenRecordKey(PREFIX, digestApiKey(tok.key)), tokenLimiterKey(PREFIX, digestApiKey(tok.key))), 0,
    'neither record nor limiter state is left')

  // Revoking by key works the same way.
  const byKey = await createTestToken(redis.url, {}, PREFIX)
  KEYS.push(byKey.key)
  t.equal((await rawRequest(gw.url, get(byKey.key))).status, 200)
  t.equal(await store.revoke(byKey.key), true)
  t.equal(code(await rawRequest(gw.url, get(byKey.key))), 'TOKEN_INVALID')
  t.equal(await r.exists(tokenLimiterKey(PREFIX, digestApiKey(byKey.key))), 0, 'refused requests wrote no limiter state')
})

t.test('a token expiring in 2 s works until then and is TOKEN_EXPIRED from then on', async (t) => {
  const key = importKey()
  const expiresAt = Date.now() + 2000
  await store.importRecords({ api_key: key, rate_limit: 1_000_000, expires_at: new Date(expiresAt).toISOString(), allowed_routes: ['/*'] })
  const first = await rawRequest(gw.url, get(key))
  t.equal(first.status, 200, 'valid before its expiry')
  // Poll until it flips; the gateway compares against Redis TIME, the same clock as Date.now here.
  const SKEW = 100
  let flipped: { res: RawResponse, at: number } | null = null
  let lastOk = 0
  const deadline = expiresAt + 20_000
  while (flipped === null && Date.now() < deadline) {
    const sent = Date.now()
    const res = await rawRequest(gw.url, get(key))
    if (res.status === 200) {
      lastOk = sent
      t.ok(sent < expiresAt + SKEW, 'a request sent after expires_at was not served')
    } else {
      flipped = { res, at: Date.now() }
    }
    await sleep(50)
  }
  if (flipped === null) throw new Error('the token never expired')
  t.ok(lastOk > 0 || first.status === 200, 'it was served before')
  t.ok(flipped.at >= expiresAt - SKEW, `refused ${flipped.at - expiresAt} ms after expires_at, not before it`)
  t.equal(flipped.res.status, 401)
  t.equal(json(flipped.res).code, 'TOKEN_EXPIRED')
  t.match(header(flipped.res, 'www-authenticate'), /^Bearer/)
  for (let i = 0; i < 3; i++) t.equal(code(await rawRequest(gw.url, get(key))), 'TOKEN_EXPIRED', 'and stays expired')
})

t.test('unknown and already-expired tokens write nothing to Redis', async (t) => {
  const key = importKey()
  await store.importRecords({ api_key: key, rate_limit: 10, expires_at: '2001-01-01T00:00:00Z', allowed_routes: ['/*'] })
  const unknown = 'never-stored-' + randomBytes(12).toString('base64url')
  for (let i = 0; i < 5; i++) {
    t.equal(code(await rawRequest(gw.url, get(key))), 'TOKEN_EXPIRED')
    t.equal(code(await rawRequest(gw.url, get(unknown))), 'TOKEN_INVALID')
  }
  t.equal(await r.exists(tokenLimiterKey(PREFIX, digestApiKey(key))), 0, 'no limiter state for the expired token')
  t.equal(await r.exists(tokenLimiterKey(PREFIX, digestApiKey(unknown)), tokenRecordKey(PREFIX, digestApiKey(unknown))), 0,
    'nothing for the unknown one')
})

t.test('edits take effect on the next request: re-importing the key with other routes and limits', async (t) => {
  const key = importKey()
  const [id] = await store.importRecords({ api_key: key, rate_limit: 100, allowed_routes: ['/api/v1/users/*'] })
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  t.equal(code(await c.request(get(key, '/api/v1/users/7'))), 'OK')
  t.equal(code(await c.request(get(key, '/api/v1/products/7'))), 'ROUTE_FORBIDDEN')
  t.equal(up.last().headers['x-consumer-id'], id)

  t.same(await store.importRecords({ api_key: key, rate_limit: 100, allowed_routes: ['GET /api/v1/products/*'] }), [id], 'same token, same id')
  t.equal(code(await c.request(get(key, '/api/v1/users/7'))), 'ROUTE_FORBIDDEN', 'the old route is gone at once')
  t.equal(code(await c.request(get(key, '/api/v1/products/7'))), 'OK', 'the new one works at once')
  t.equal(code(await c.request(`POST /api/v1/products/7 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 0\r\n\r\n`)),
    'ROUTE_FORBIDDEN', 'and only for the listed method')

  // A lower limit applies at once too.
  await store.importRecords({ api_key: key, rate_limit: 1, burst: 1, window_seconds: 3600, allowed_routes: ['/*'] })
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await c.request(get(key))).status)
  t.ok(statuses.includes(429), `a 429 within 3 requests after lowering the limit to 1/h (${statuses.join(',')})`)

  // And an edit that sets an expiry in the past expires it at once.
  await store.importRecords({ api_key: key, rate_limit: 100, expires_at: '2020-01-01T00:00:00Z', allowed_routes: ['/*'] })
  t.equal(code(await c.request(get(key))), 'TOKEN_EXPIRED')
})

t.test('the upstream never saw a credential', async (t) => {
  t.ok(up.seen.length >= 5)
  t.same(credentialLeaks(up.seen, KEYS), [])
})
