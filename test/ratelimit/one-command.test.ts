// At most one Redis command per proxied request, counted by Redis itself: CONFIG
// RESETSTAT, N concurrent requests, INFO commandstats. The gate coalesces the checks of one tick
// into one script call (plugins/gate.ts), so N requests may cost fewer than N calls, never more.
// Refusals made before the token check cost no command at all.
import t, { type Test } from 'tap'
import { request } from 'undici'
import type { Redis } from 'ioredis'
import { RedisServer } from '../helpers/redis.js'
import { RedisCluster } from '../helpers/redis-cluster.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { createClusterTestToken, createTestToken } from '../helpers/tokens.js'

const N = 50
// Commands that run without any request: under-pressure's and /readyz's PING, ioredis' connect
// handshake and cluster topology refreshes, and this test's own CONFIG RESETSTAT and INFO.
const BACKGROUND = /^(ping|info|config\|resetstat|client\|.*|cluster\|.*|command.*|hello|select|auth)$/

// Not a fault test: a loaded CI machine must not turn a slow Redis reply or a stalled event loop
// into a 503 here (the default 250 ms command timeout is tested in redis-faults.test.ts).
const PATIENT = { REDIS_COMMAND_TIMEOUT_MS: '5000', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' }
// A private Redis (not REDIS_URL): no other test file's commands may land in these counts.
const server = await new RedisServer().start()
const upstream = await new Upstream().start()
const gw = await startGateway({ REDIS_URL: server.url, ROUTES: `/api=${upstream.url}`, LOG_LEVEL: 'warn', ...PATIENT })
const admin = server.client()
t.teardown(async () => {
  admin.disconnect()
  await gw.app.close()
  await upstream.close()
  await server.close()
})

/** `cmdstat_<name>` → calls, failed_calls, from INFO commandstats of every node given. */
async function commandStats (nodes: Redis[]): Promise<Map<string, { calls: number, failed: number }>> {
  const stats = new Map<string, { calls: number, failed: number }>()
  for (const node of nodes) {
    for (const m of (await node.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),.*?failed_calls=(\d+)/gm)) {
      const prev = stats.get(m[1] as string) ?? { calls: 0, failed: 0 }
      stats.set(m[1] as string, { calls: prev.calls + Number(m[2]), failed: prev.failed + Number(m[3]) })
    }
  }
  return stats
}

/**
 * Resets the counters, runs `traffic`, and returns the commands it caused (background ones apart).
 * Redis also counts the commands a script runs inside itself (HMGET, TIME, GET, SET of gcra.lua):
 * they come back in `inner`, so a test can check they are exactly what the script calls explain.
 */
async function countCommands (nodes: Redis[], traffic: () => Promise<void>): Promise<{ script: number, failed: number, inner: Record<string, number>, background: string }> {
  for (const node of nodes) await node.config('RESETSTAT')
  await traffic()
  const stats = await commandStats(nodes)
  const calls = (name: string): number => stats.get(name)?.calls ?? 0
  const all = [...stats.entries()]
  return {
    script: calls('evalsha') + calls('eval'),
    failed: all.reduce((sum, [, s]) => sum + s.failed, 0),
    inner: Object.fromEntries(all.filter(([name]) => name !== 'evalsha' && name !== 'eval' && !BACKGROUND.test(name)).map(([name, s]) => [name, s.calls])),
    background: all.filter(([name]) => BACKGROUND.test(name)).map(([name, s]) => `${name}=${s.calls}`).join(' ')
  }
}

async function fire (t: Test, g: TestGateway, n: number, path: string, authorization: string | undefined, status: number): Promise<void> {
  const statuses = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const res = await request(`${g.url}${path}${i}`, { headers: authorization === undefined ? {} : { authorization } })
    await res.body.dump()
    return res.statusCode
  }))
  t.same([...new Set(statuses)], [status], `${n} × ${path}… answered ${status}`)
}

async function exactlyOnePerRequest (t: Test, g: TestGateway, nodes: Redis[], bearer: string, label: string): Promise<void> {
  await fire(t, g, 1, '/api/warm/', bearer, 200) // the script is cached from here on: EVALSHA only
  const forwarded = upstream.seen.length
  const c = await countCommands(nodes, async () => { await fire(t, g, N, '/api/one/', bearer, 200) })
  t.equal(upstream.seen.length, forwarded + N, `${label}: ${N} requests proxied`)
  t.ok(c.script > 0 && c.script <= N, `${label}: ${c.script} script calls, at most one per proxied request`)
  t.equal(c.failed, 0, `${label}: no failed command (no NOSCRIPT retry)`)
  // Each script call reads the clock (TIME) once; each group of checks (one token: one group per
  // call here) reads the record (HMGET) and the TAT (GET) once, and writes the TAT (SET) once: any
  // command the gateway sent itself would show up as a surplus here.
  t.same(c.inner, { hmget: c.script, time: c.script, get: c.script, set: c.script }, `${label}: no other command ran than those inside the script`)
  t.comment(`${label}: ${N} proxied requests → ${c.script} script calls (${(c.script / N).toFixed(2)} per request); background: ${c.background}`)
}

t.test('single node: each proxied request costs at most one Redis command', async (t) => {
  const token = await createTestToken(server.url)
  await exactlyOnePerRequest(t, gw, [admin], token.bearer, 'single node')
})

t.test('refusals before the token check (malformed 401, 400, 404) cost no command at all', async (t) => {
  const token = await createTestToken(server.url)
  const c = await countCommands([admin], async () => {
    await fire(t, gw, 20, '/api/x/', undefined, 401)
    await fire(t, gw, 20, '/api/x/', 'Bearer two tokens', 401)
    await fire(t, gw, 20, '/api/x/', 'Basic dXNlcjpwYXNz', 401)
    await fire(t, gw, 20, '/nowhere/', token.bearer, 404)
    await fire(t, gw, 20, '/api/a%2Fb/', token.bearer, 400)
  })
  t.equal(c.script, 0, 'no script call')
  t.same(c.inner, {}, 'no other command')
  t.comment(`100 refusals before the limiter: ${c.script} script calls; background: ${c.background}`)
})

t.test('refusals by the script (unknown token 401, 403, 429) cost at most one command each', async (t) => {
  const narrow = await createTestToken(server.url, { rate_limit: 1, window_seconds: 3600, allowed_routes: ['/api/only/*'] })
  await fire(t, gw, 1, '/api/only/', narrow.bearer, 200)
  const c = await countCommands([admin], async () => {
    await fire(t, gw, 10, '/api/x/', 'Bearer pc_' + 'z'.repeat(40), 401)
    await fire(t, gw, 10, '/api/elsewhere/', narrow.bearer, 403)
    await fire(t, gw, 10, '/api/only/', narrow.bearer, 429)
  })
  t.ok(c.script > 0 && c.script <= 30, `${c.script} script calls for 30 refusals`)
  // TIME once per call; one token per call here, so one group. Unknown: HMGET only. 403 and 429
  // (bucket empty): HMGET, GET, and no SET.
  t.same(Object.keys(c.inner).sort(), ['get', 'hmget', 'time'], 'no other command than those inside the script, and no write')
  t.equal(c.inner.time, c.script)
  t.equal(c.inner.hmget, c.script, 'one record read per call')
  t.ok((c.inner.get ?? 0) >= 2 && (c.inner.get ?? 0) < c.script, `a TAT read in each call of the known token only (${c.inner.get ?? 0} of ${c.script})`)
})

t.test('Redis Cluster: each proxied request costs at most one command, summed over all masters', async (t) => {
  const cluster = await new RedisCluster().start()
  t.teardown(() => cluster.close())
  const g = await startGateway({ REDIS_CLUSTER_NODES: cluster.nodes, ROUTES: `/api=${upstream.url}`, LOG_LEVEL: 'warn', ...PATIENT })
  t.teardown(() => g.app.close())
  const nodes = cluster.nodeClients()
  t.teardown(() => { for (const n of nodes) n.disconnect() })
  const token = await createClusterTestToken(cluster.nodes)
  await exactlyOnePerRequest(t, g, nodes, token.bearer, 'cluster')
})
