// An open WebSocket tunnel over time: closed within WEBSOCKET_RECHECK_SECONDS when its token is
// revoked, expires, or loses the route (one read-only Redis command per tunnel per period, no
// quota spent); closed after WEBSOCKET_IDLE_TIMEOUT_MS without a byte; closed when the shutdown
// grace runs out, not before.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedRedis } from '../helpers/redis.js'
import { startGateway, CALM, type TestGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { WsUpstream } from '../helpers/ws-upstream.js'
import { openWs, nextMessage, closedWithin, rawHandshake } from '../helpers/ws-client.js'
import { rawRequest, header } from '../helpers/raw-http.js'
import { valueOf } from '../helpers/prometheus.js'
import { until } from '../helpers/until.js'
import { TokenStore } from '../../src/tokens/store.js'
import { Redis } from 'ioredis'

const redis = await sharedRedis()
const up = await new WsUpstream().start()
const ROUTES = `/ws=${up.url},/other=${up.url}`
const gw: TestGateway = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES, WEBSOCKET_RECHECK_SECONDS: '1' })
const r = new Redis(redis.url)
const store = new TokenStore(r, 'portcullis:')
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  r.disconnect()
  await redis.close()
})

/** The close counter for `reason` once it stops changing (the client may see the close a moment before the gateway counts it). */
async function closedBy (g: TestGateway, reason: string): Promise<number> {
  const read = async (): Promise<number> =>
    valueOf(await g.app.metrics.registry.metrics(), 'portcullis_websocket_closed_total', { route: '/ws', reason })
  await until(async () => valueOf(await g.app.metrics.registry.metrics(), 'portcullis_websocket_connections', { route: '/ws' }) <= 0, 3000)
  return await read()
}

t.test('revoked while open: closed within the recheck period', async (t) => {
  const token = await createTestToken(redis.url)
  const ws = await openWs(gw.url, '/ws/x', token.bearer)
  ws.send('still here')
  t.equal((await nextMessage(ws)).data.toString(), 'still here')
  const revokedAt = performance.now()
  t.ok(await store.revoke(token.id))
  t.not(await closedWithin(ws, 5000), null, 'the tunnel is closed')
  const took = performance.now() - revokedAt
  t.ok(took < 3500, `within ~1 s period (took ${Math.round(took)} ms)`)
  t.equal(await closedBy(gw, 'revoked'), 1)
})

t.test('expired while open: closed, reason expired', async (t) => {
  const token = await createTestToken(redis.url, { expires_at: new Date(Date.now() + 1500).toISOString().replace(/\.\d+Z$/, 'Z') })
  const ws = await openWs(gw.url, '/ws/x', token.bearer)
  t.not(await closedWithin(ws, 6000), null, 'closed once the token expired')
  t.equal(await closedBy(gw, 'expired'), 1)
})

t.test('allowed_routes edited: a tunnel whose route is still allowed stays, one whose route went is closed', async (t) => {
  const token = await createTestToken(redis.url, { allowed_routes: ['GET /ws/*'] })
  const ws = await openWs(gw.url, '/ws/x', token.bearer)
  await store.importRecords({ api_key: token.key, rate_limit: 1_000_000, allowed_routes: ['GET /ws/*', 'GET /other/*'] })
  t.equal(await closedWithin(ws, 2500), null, 'still open after two periods: the route is still allowed')
  ws.send('ok')
  t.equal((await nextMessage(ws)).data.toString(), 'ok')
  await store.importRecords({ api_key: token.key, rate_limit: 1_000_000, allowed_routes: ['GET /other/*'] })
  t.not(await closedWithin(ws, 3500), null, 'closed once the route is no longer allowed')
  t.equal(await closedBy(gw, 'forbidden'), 1)
})

t.test('the recheck spends no quota and costs one Redis command per tunnel per period', async (t) => {
  const token = await createTestToken(redis.url, { rate_limit: 1, burst: 10, window_seconds: 3600 })
  const first = await rawRequest(gw.url, rawHandshake('/ws/count', [`Authorization: ${token.bearer}`]))
  t.equal(first.status, 101)
  t.match(header(first, 'ratelimit'), /^"default";r=9;/)
  const N = 5
  const sockets = await Promise.all(Array.from({ length: N }, async () => await openWs(gw.url, '/ws/x', (await createTestToken(redis.url)).bearer)))
  const stats = async (): Promise<number> => {
    const m = /cmdstat_evalsha:calls=(\d+)/.exec(await r.info('commandstats'))
    return Number(m?.[1] ?? 0)
  }
  const before = await stats()
  await sleep(3200)
  const calls = await stats() - before
  t.ok(calls >= N * 2 && calls <= N * 4 + 2, `about one command per tunnel per second (${calls} for ${N} tunnels in 3.2 s)`)
  const second = await rawRequest(gw.url, rawHandshake('/ws/count', [`Authorization: ${token.bearer}`]))
  t.match(header(second, 'ratelimit'), /^"default";r=8;/, 'only the two upgrades were counted')
  for (const s of sockets) s.terminate()
})

t.test('idle: no byte either way for WEBSOCKET_IDLE_TIMEOUT_MS closes the tunnel; traffic keeps it open', async (t) => {
  const idle = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES, WEBSOCKET_IDLE_TIMEOUT_MS: '700' })
  t.teardown(async () => { await idle.app.close() })
  const token = await createTestToken(redis.url)
  const busy = await openWs(idle.url, '/ws/busy', token.bearer)
  const quiet = await openWs(idle.url, '/ws/quiet', token.bearer)
  const opened = performance.now()
  const pinger = setInterval(() => { busy.ping() }, 150)
  t.teardown(() => { clearInterval(pinger) })
  t.not(await closedWithin(quiet, 5000), null, 'the quiet tunnel is closed')
  const took = performance.now() - opened
  t.ok(took >= 600 && took < 4000, `after about the idle timeout (${Math.round(took)} ms)`)
  await sleep(800)
  t.equal(busy.readyState, busy.OPEN, 'the busy tunnel stays open')
  clearInterval(pinger)
  t.not(await closedWithin(busy, 5000), null, 'and closes once it falls quiet')
  t.equal(await closedBy(idle, 'idle'), 2)
})

t.test('shutdown: an open tunnel keeps working through the grace, then is closed', async (t) => {
  const g = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES, SHUTDOWN_GRACE_MS: '2000' })
  const token = await createTestToken(redis.url)
  const ws = await openWs(g.url, '/ws/x', token.bearer)
  const started = performance.now()
  g.app.lifecycle.beginDraining()
  const closing = g.app.close()
  await sleep(500)
  ws.send('during the grace')
  t.equal((await nextMessage(ws)).data.toString(), 'during the grace', 'still tunnelled while draining')
  t.not(await closedWithin(ws, 5000), null, 'closed')
  const took = performance.now() - started
  t.ok(took >= 1500 && took < 4000, `at the end of the grace (${Math.round(took)} ms)`)
  await closing
  t.equal(await closedBy(g, 'shutdown'), 1)
})
