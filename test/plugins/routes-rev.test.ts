// The routes revision (routes_rev) on a real Redis and real gateways: the script sends a token's
// allowed_routes only when the gateway's compiled revision is stale, yet an edit still applies on
// the very next request (docs/tokens.md), and the hot path stays one script call per request (docs/performance.md).
// Measured at Redis itself (INFO counters of a private redis-server), not inside the gateway.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { RedisServer } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { CALM, startGateway } from '../helpers/gateway.js'
import { RawConnection, json, type RawResponse } from '../helpers/raw-http.js'
import { TokenStore } from '../../src/tokens/store.js'
import { digestApiKey, tokenRecordKey } from '../../src/tokens/keys.js'
import { MAX_PATTERN_LENGTH } from '../../src/lib/route-patterns.js'

const PREFIX = 'portcullis:'
// Private, never REDIS_URL: the counters below must see this file's traffic only.
const server = await new RedisServer().start()
const r = server.client()
const store = new TokenStore(r, PREFIX)
const up = await new Upstream().start()
const env = { ...CALM, REDIS_URL: server.url, ROUTES: `/api/v1/users=${up.url},/api/v1/products=${up.url}` }
const gw = await startGateway(env)
const gw2 = await startGateway(env)
const conn = await RawConnection.open(gw.url)
const conn2 = await RawConnection.open(gw2.url)
t.teardown(async () => {
  conn.close()
  conn2.close()
  await gw.app.close()
  await gw2.app.close()
  await up.close()
  r.disconnect()
  await server.close()
})

const newKey = (): string => 'rev-' + randomBytes(18).toString('base64url')
const code = (res: RawResponse): unknown => res.status === 200 ? 'OK' : json(res).code
async function send (c: RawConnection, key: string, target: string, method = 'GET'): Promise<unknown> {
  return code(await c.request(`${method} ${target} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${key}\r\nContent-Length: 0\r\n\r\n`))
}

/** Bytes Redis has written to all its clients, and how many script calls it has run. */
async function redisCounters (): Promise<{ bytesOut: number, scriptCalls: number }> {
  const stats = await r.info('stats')
  const commands = await r.info('commandstats')
  const calls = (cmd: string): number => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(commands)?.[1] ?? 0)
  return {
    bytesOut: Number(/^total_net_output_bytes:(\d+)/m.exec(stats)?.[1]),
    scriptCalls: calls('evalsha') + calls('eval')
  }
}

/** 100 patterns of MAX_PATTERN_LENGTH characters, the largest allowed_routes a token may carry. */
function hundredPatterns (): string[] {
  const routes = ['/api/v1/users/*']
  for (let i = 1; i < 100; i++) routes.push(`/api/v1/products/p${i}-`.padEnd(MAX_PATTERN_LENGTH, 'x'))
  return routes
}

t.test('an edit of allowed_routes is seen on the very next request, both directions, by every gateway', async (t) => {
  const key = newKey()
  await store.importRecords({ api_key: key, rate_limit: 1_000_000, allowed_routes: ['/api/v1/users/*'] })
  for (const c of [conn, conn2]) {
    t.equal(await send(c, key, '/api/v1/users/7'), 'OK')
    t.equal(await send(c, key, '/api/v1/products/7'), 'ROUTE_FORBIDDEN')
    // Several more, so each gateway surely holds this revision and the script answers "unchanged".
    for (let i = 0; i < 3; i++) t.equal(await send(c, key, '/api/v1/users/7'), 'OK')
  }

  await store.importRecords({ api_key: key, rate_limit: 1_000_000, allowed_routes: ['GET /api/v1/products/*'] })
  for (const c of [conn, conn2]) {
    t.equal(await send(c, key, '/api/v1/products/7'), 'OK', 'newly allowed at once')
    t.equal(await send(c, key, '/api/v1/users/7'), 'ROUTE_FORBIDDEN', 'newly forbidden at once')
    t.equal(await send(c, key, '/api/v1/products/7', 'POST'), 'ROUTE_FORBIDDEN', 'only for the listed method')
  }

  // Back to the first routes: a revision a gateway held before is still "another" revision now.
  await store.importRecords({ api_key: key, rate_limit: 1_000_000, allowed_routes: ['/api/v1/users/*'] })
  for (const c of [conn, conn2]) {
    t.equal(await send(c, key, '/api/v1/users/7'), 'OK')
    t.equal(await send(c, key, '/api/v1/products/7'), 'ROUTE_FORBIDDEN')
  }
})

t.test('20 requests with 100 patterns of 1024 characters: one script call each, the routes on the wire once', async (t) => {
  const key = newKey()
  const routes = hundredPatterns()
  await store.importRecords({ api_key: key, rate_limit: 1_000_000, allowed_routes: routes })
  const routesBytes = Buffer.byteLength(JSON.stringify(routes))
  t.ok(routesBytes > 100_000, `${routesBytes} bytes of routes`)
  // Loads the script on this Redis first, so no NOSCRIPT retry counts as a second call below.
  t.equal(await send(conn, newKey(), '/api/v1/users/1'), 'TOKEN_INVALID')

  const before = await redisCounters()
  const seen: unknown[] = []
  for (let i = 0; i < 20; i++) seen.push(await send(conn, key, i % 2 === 0 ? '/api/v1/users/7' : '/api/v1/products/7'))
  const after = await redisCounters()
  t.same(seen, Array.from({ length: 20 }, (_, i) => i % 2 === 0 ? 'OK' : 'ROUTE_FORBIDDEN'), 'the routes were applied every time')
  const calls = after.scriptCalls - before.scriptCalls
  const bytes = after.bytesOut - before.bytesOut
  t.equal(calls / 20, 1, `script calls per request: ${(calls / 20).toFixed(2)}`)
  // Once is at least routesBytes; twice would be at least 2 x routesBytes.
  t.ok(bytes >= routesBytes && bytes < 1.5 * routesBytes, `Redis sent ${bytes} bytes for 20 requests: the routes (${routesBytes}) once`)
  t.comment(`100 patterns: ${bytes} bytes from Redis over 20 requests, ${calls} script calls`)

  // The other gateway holds nothing yet: its first request gets the routes, later ones do not.
  const first = await redisCounters()
  t.equal(await send(conn2, key, '/api/v1/users/7'), 'OK')
  const second = await redisCounters()
  for (let i = 0; i < 5; i++) t.equal(await send(conn2, key, '/api/v1/users/7'), 'OK')
  const third = await redisCounters()
  t.ok(second.bytesOut - first.bytesOut >= routesBytes, 'a gateway that has never seen the token receives the routes')
  t.ok(third.bytesOut - second.bytesOut < routesBytes / 10, `then only small replies (${third.bytesOut - second.bytesOut} bytes for 5)`)
})

t.test('a record written before routes_rev existed still works, its routes sent every time', async (t) => {
  const key = newKey()
  const routes = hundredPatterns()
  await store.importRecords({ api_key: key, rate_limit: 1_000_000, allowed_routes: routes })
  // What a record written by an older release looks like.
  t.equal(await r.hdel(tokenRecordKey(PREFIX, digestApiKey(key)), 'routes_rev'), 1)
  const routesBytes = Buffer.byteLength(JSON.stringify(routes))
  t.equal(await send(conn, newKey(), '/api/v1/users/1'), 'TOKEN_INVALID')

  const before = await redisCounters()
  const seen: unknown[] = []
  for (let i = 0; i < 20; i++) seen.push(await send(conn, key, i % 2 === 0 ? '/api/v1/users/7' : '/api/v1/products/7'))
  const after = await redisCounters()
  t.same(seen, Array.from({ length: 20 }, (_, i) => i % 2 === 0 ? 'OK' : 'ROUTE_FORBIDDEN'))
  t.equal(after.scriptCalls - before.scriptCalls, 20, 'still one script call per request')
  t.ok(after.bytesOut - before.bytesOut >= 20 * routesBytes, `the routes every time (${after.bytesOut - before.bytesOut} bytes)`)

  // An edit through the store writes routes_rev again; the edit applies at once.
  await store.importRecords({ api_key: key, rate_limit: 1_000_000, allowed_routes: ['/api/v1/products/*'] })
  t.equal(await send(conn, key, '/api/v1/users/7'), 'ROUTE_FORBIDDEN')
  t.equal(await send(conn, key, '/api/v1/products/7'), 'OK')
  t.match(await r.hget(tokenRecordKey(PREFIX, digestApiKey(key)), 'routes_rev'), /^[0-9a-f]{16}$/)
})
