// Limits stay exact across gateway instances: 3·B concurrent requests spread over several
// gateways (each with its own Redis connection) admit exactly B, on one Redis, on a Redis
// Cluster, and across the worker processes of WORKERS=2.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { Agent, request } from 'undici'
import { freePort, sharedRedis } from '../helpers/redis.js'
import { RedisCluster } from '../helpers/redis-cluster.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { createClusterTestToken, createTestToken, type TestToken } from '../helpers/tokens.js'
import { until } from '../helpers/until.js'
import { TokenStore } from '../../src/tokens/store.js'

const BURST = 20
// A window of an hour: at most one unit refills (every 180 s) during a test, i.e. none.
const LIMITS = { rate_limit: BURST, window_seconds: 3600 }
const PREFIX = 'exactness:'

// Not a fault test: a loaded CI machine must not turn a slow Redis reply or a stalled event loop
// into a 503 here (the default 250 ms command timeout is tested in redis-faults.test.ts).
const PATIENT = { REDIS_COMMAND_TIMEOUT_MS: '5000', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' }
const redis = await sharedRedis()
const upstream = await new Upstream().start()
// Many connections per gateway, so requests really run in parallel rather than queue on one socket.
const agent = new Agent({ connections: 64, pipelining: 1 })
t.teardown(async () => {
  await agent.close()
  await upstream.close()
  await redis.close()
})

interface Outcome { admitted: number, limited: number, other: Array<number | string>, forwarded: number }

/** Fires 3·B requests at once, request i to urls[i % urls.length], and counts the answers. */
async function burst (urls: string[], token: TestToken): Promise<Outcome> {
  const before = upstream.seen.length
  const statuses = await Promise.all(Array.from({ length: 3 * BURST }, async (_, i) => {
    const res = await request(`${urls[i % urls.length] as string}/api/exact/${i}`, {
      dispatcher: agent, headers: { authorization: token.bearer }
    })
    const text = await res.body.text()
    // Anything unexpected is kept with its body, so a failure says what happened.
    return res.statusCode === 200 || res.statusCode === 429 ? res.statusCode : `${res.statusCode} ${text}`
  }))
  return {
    admitted: statuses.filter((s) => s === 200).length,
    limited: statuses.filter((s) => s === 429).length,
    other: statuses.filter((s) => s !== 200 && s !== 429),
    forwarded: upstream.seen.length - before
  }
}

function assertExact (t: Test, o: Outcome, label: string): void {
  t.equal(o.admitted, BURST, `${label}: exactly B admitted`)
  t.equal(o.limited, 2 * BURST, `${label}: 2B limited`)
  t.same(o.other, [], `${label}: no other status`)
  t.equal(o.forwarded, BURST, `${label}: exactly B reached the upstream`)
}

async function startThree (env: Record<string, string>): Promise<TestGateway[]> {
  const env2 = { ROUTES: `/api=${upstream.url}`, REDIS_KEY_PREFIX: PREFIX, LOG_LEVEL: 'warn', ...PATIENT, ...env }
  return await Promise.all([startGateway(env2), startGateway(env2), startGateway(env2)])
}

t.test('three gateway instances on one Redis admit exactly B of 3B concurrent requests', async (t) => {
  const gws = await startThree({ REDIS_URL: redis.url })
  t.teardown(async () => { for (const g of gws) await g.app.close() })
  const admittedPerRepeat: number[] = []
  for (let repeat = 1; repeat <= 10; repeat++) {
    const token = await createTestToken(redis.url, LIMITS, PREFIX)
    const o = await burst(gws.map((g) => g.url), token)
    admittedPerRepeat.push(o.admitted)
    assertExact(t, o, `single node, repeat ${repeat}`)
  }
  t.comment(`single node: admitted per repeat ${admittedPerRepeat.join(' ')} (B = ${BURST})`)
})

t.test('three gateway instances on a 3-master Redis Cluster admit exactly B', async (t) => {
  const cluster = await new RedisCluster().start()
  t.teardown(() => cluster.close())
  const gws = await startThree({ REDIS_CLUSTER_NODES: cluster.nodes })
  t.teardown(async () => { for (const g of gws) await g.app.close() })
  const admittedPerRepeat: number[] = []
  const masters = new Set<number>()
  const nodes = cluster.nodeClients()
  t.teardown(() => { for (const n of nodes) n.disconnect() })
  for (let repeat = 1; repeat <= 5; repeat++) {
    const token = await createClusterTestToken(cluster.nodes, LIMITS, PREFIX)
    const o = await burst(gws.map((g) => g.url), token)
    admittedPerRepeat.push(o.admitted)
    assertExact(t, o, `cluster, repeat ${repeat}`)
    // Which masters hold limiter keys (reported only: a random token may land on any of them).
    for (const [i, n] of nodes.entries()) {
      const [, keys] = await n.scan('0', 'MATCH', `${PREFIX}*:gcra`, 'COUNT', 1000)
      if (keys.length > 0) masters.add(i)
    }
  }
  t.comment(`cluster: admitted per repeat ${admittedPerRepeat.join(' ')} (B = ${BURST}); limiter keys on ${masters.size} of 3 masters`)

  // TokenStore on the Cluster: revoking (record and limiter in one slot, index in another) is
  // seen by every instance on the very next request.
  const token = await createClusterTestToken(cluster.nodes, LIMITS, PREFIX)
  const admin = cluster.client()
  t.teardown(() => admin.disconnect())
  const store = new TokenStore(admin, PREFIX)
  t.ok((await store.list()).some((p) => p.id === token.id), 'the token is listed')
  t.ok(await store.revoke(token.id), 'revoked by id')
  for (const g of gws) {
    const res = await request(`${g.url}/api/revoked`, { headers: { authorization: token.bearer } })
    await res.body.dump()
    t.equal(res.statusCode, 401, 'refused by every instance at once')
  }
})

t.test('WORKERS=2: both worker processes share one exact limit', async (t) => {
  const cli = new URL('../../dist/src/cli.js', import.meta.url)
  t.ok(existsSync(cli), 'dist/ is built (npm run build)')
  if (!existsSync(cli)) return
  const port = await freePort()
  const proc = spawn(process.execPath, ['bin/portcullis.js', 'serve'], {
    cwd: new URL('../../', import.meta.url).pathname,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: PREFIX,
      ROUTES: `/api=${upstream.url}`,
      WORKERS: '2',
      LOG_LEVEL: 'info',
      ...PATIENT
    },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const lines: string[] = []
  let buffered = ''
  proc.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8')
    const parts = buffered.split('\n')
    buffered = parts.pop() ?? ''
    lines.push(...parts.filter((l) => l !== ''))
  })
  t.teardown(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const gone = once(proc, 'exit')
    proc.kill('SIGTERM')
    await gone
  })
  const listening = (): number => lines.filter((l) => l.includes('Server listening')).length
  await until(() => listening() >= 2, 20_000, 50)
  t.equal(listening(), 2, 'both workers listen')

  const url = `http://127.0.0.1:${port}`
  for (let repeat = 1; repeat <= 3; repeat++) {
    const token = await createTestToken(redis.url, LIMITS, PREFIX)
    const o = await burst([url], token)
    assertExact(t, o, `WORKERS=2, repeat ${repeat}`)
    t.comment(`WORKERS=2 repeat ${repeat}: admitted ${o.admitted}, limited ${o.limited}`)
  }
  const pids = new Set(lines.flatMap((l) => {
    const rec = JSON.parse(l) as { msg?: string, pid?: number }
    return rec.msg === 'request' && rec.pid !== undefined ? [rec.pid] : []
  }))
  t.equal(pids.size, 2, `requests were served by both worker processes (pids ${[...pids].join(', ')})`)
})
