// Redis faults for real, on a private redis-server: killed (SIGKILL) mid-test, restarted empty
// on the same port, its script cache flushed, and paused so commands hang; and a Cluster master killed. The gateway answers
// 503 STORE_UNAVAILABLE fast, never 401/500, never forwards, and heals by itself.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import type { Redis } from 'ioredis'
import { RedisServer } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { RedisCluster } from '../helpers/redis-cluster.js'
import { createClusterTestToken, createTestToken, type TestToken } from '../helpers/tokens.js'
import { digestApiKey, tokenKeys } from '../../src/tokens/keys.js'

const server = await new RedisServer().start()
const upstream = await new Upstream().start()
const gw = await startGateway({ REDIS_URL: server.url, ROUTES: `/api=${upstream.url}`, LOG_LEVEL: 'warn' })
/** A client for set-up and assertions that stays quiet while its server is down. */
function adminClient (): Redis {
  const c = server.client()
  c.on('error', () => {})
  return c
}
let admin = adminClient()
let token = await createTestToken(server.url)
t.teardown(async () => {
  admin.disconnect()
  await gw.app.close()
  await upstream.close()
  await server.close()
})

interface Answer { status: number, code: string | null, retryAfter: string | undefined, ms: number }

async function send (path: string, tok: TestToken = token): Promise<Answer> {
  const started = performance.now()
  const res = await request(gw.url + path, { headers: { authorization: tok.bearer } })
  const text = await res.body.text()
  const ms = performance.now() - started
  const code = res.statusCode === 200 ? null : (JSON.parse(text) as { code?: string }).code ?? null
  return { status: res.statusCode, code, retryAfter: res.headers['retry-after'] as string | undefined, ms }
}

async function readyz (): Promise<{ status: number, reason?: string }> {
  const res = await request(gw.url + '/readyz')
  const body = await res.body.json() as { reason?: string }
  return { status: res.statusCode, ...(body.reason === undefined ? {} : { reason: body.reason }) }
}

/** Polls until `ok`, up to `ms`; returns the time it took or null. */
async function within (ms: number, ok: () => Promise<boolean>, every = 50): Promise<number | null> {
  const started = Date.now()
  while (Date.now() - started <= ms) {
    if (await ok()) return Date.now() - started
    await sleep(every)
  }
  return null
}

async function commandCalls (r: Redis, name: string): Promise<number> {
  const m = new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(await r.info('commandstats'))
  return Number(m?.[1] ?? 0)
}

t.test('SCRIPT FLUSH on a live Redis: the next request still passes (EVALSHA falls back to EVAL)', async (t) => {
  t.equal((await send('/api/warm')).status, 200)
  await admin.script('FLUSH')
  await admin.config('RESETSTAT')
  const a = await send('/api/after-flush')
  t.equal(a.status, 200, 'admitted after the script cache was emptied')
  t.equal(await commandCalls(admin, 'eval'), 1, 'the script was sent again with EVAL, once')
  t.equal((await send('/api/again')).status, 200)
  t.equal(await commandCalls(admin, 'eval'), 1, 'and the cache serves EVALSHA again afterwards')
})

t.test('a Redis that hangs: 503 within the command timeout, not after the pause; then healthy again', async (t) => {
  const before = upstream.seen.length
  await admin.client('PAUSE', 2000, 'ALL')
  const pausedAt = performance.now()
  const a = await send('/api/paused')
  t.equal(a.status, 503)
  t.equal(a.code, 'STORE_UNAVAILABLE')
  t.ok(a.retryAfter !== undefined && Number(a.retryAfter) >= 1, `Retry-After ${a.retryAfter}`)
  t.ok(a.ms < 1000, `answered in ${Math.round(a.ms)} ms, while Redis was paused for 2000 ms`)
  t.ok(performance.now() - pausedAt < 1500, 'the answer came before the pause ended')
  t.equal(upstream.seen.length, before, 'nothing was forwarded')
  t.comment(`paused Redis: 503 after ${Math.round(a.ms)} ms`)
  const healed = await within(5000, async () => (await send('/api/after-pause')).status === 200, 100)
  t.not(healed, null, 'admitted again once the pause is over')
  t.comment(`after CLIENT PAUSE 2000: 200 again ${Math.round((performance.now() - pausedAt))} ms after the pause began`)
})

t.test('a Redis stall (SIGSTOP) past the command timeout: the requests answered 503 spend no quota', async (t) => {
  const BURST = 10
  const tok = await createTestToken(server.url, { rate_limit: BURST, burst: BURST, window_seconds: 3600 })
  const { limiter } = tokenKeys('portcullis:', digestApiKey(tok.key))
  const forwarded = upstream.seen.length
  server.pause()
  let resumed = false
  const resume = (): void => { if (!resumed) server.resume(); resumed = true }
  t.teardown(resume)
  // 20 requests in rounds of 5: several script calls wait on the frozen server's socket.
  const answers: Answer[] = []
  for (let round = 0; round < 4; round++) {
    answers.push(...await Promise.all(Array.from({ length: 5 }, async (_, i) => await send(`/api/stalled/${round}/${i}`, tok))))
  }
  resume()
  t.same([...new Set(answers.map((a) => `${a.status} ${a.code ?? ''}`))], ['503 STORE_UNAVAILABLE'], 'every request during the stall: 503')
  t.equal(upstream.seen.length, forwarded, 'nothing forwarded')
  // The resumed server runs every call that waited: each finds its deadline passed and writes nothing.
  t.not(await within(3000, async () => await admin.ping().then(() => true, () => false)), null, 'Redis answers again')
  // Another token tells when the gateway serves again (a loaded machine may still shed or time out a while).
  t.not(await within(5000, async () => (await send('/api/probe')).status === 200, 100), null, 'the gateway serves again')
  t.equal(await admin.exists(limiter), 0, 'no TAT was written by the stalled calls')
  const res = await request(gw.url + '/api/after-stall', { headers: { authorization: tok.bearer } })
  await res.body.dump()
  t.equal(res.statusCode, 200)
  t.equal(res.headers.ratelimit, `"default";r=${BURST - 1};t=360`, 'the first request after the stall finds a full bucket: r = burst - 1')
})

t.test('a Redis stall: a check that arrives while a call is out waits at most GATE_HOLD_MS, then goes out in a call of its own', async (t) => {
  // A gateway whose command timeout outlasts the stall, so every request is answered 200 after it.
  const slow = await startGateway({ REDIS_URL: server.url, ROUTES: `/api=${upstream.url}`, LOG_LEVEL: 'warn', REDIS_COMMAND_TIMEOUT_MS: '5000' })
  t.teardown(async () => { await slow.app.close() })
  const sendTo = async (path: string): Promise<number> => {
    const res = await request(slow.url + path, { headers: { authorization: token.bearer } })
    await res.body.dump()
    return res.statusCode
  }
  t.equal(await sendTo('/api/hold-warm'), 200)
  await admin.config('RESETSTAT')
  server.pause()
  let resumed = false
  const resume = (): void => { if (!resumed) server.resume(); resumed = true }
  t.teardown(resume)
  // Three requests 100 ms apart, each long after GATE_HOLD_MS (2 ms) past the previous call, which
  // the frozen server never answers: each must go out in a call of its own. Held until the first
  // call's reply instead, the last two would go out together after the stall: 2 calls, not 3.
  const answers: Array<Promise<number>> = []
  for (let i = 0; i < 3; i++) {
    answers.push(sendTo(`/api/held/${i}`))
    await sleep(100)
  }
  resume()
  t.same(await Promise.all(answers), [200, 200, 200], 'all three answered once Redis runs again')
  t.equal(await commandCalls(admin, 'evalsha'), 3, 'three script calls: none waited for the stalled one past the hold')
})

t.test('Redis killed: fast 503s, never 401/500, nothing forwarded; back to 200 after a restart', async (t) => {
  t.equal((await send('/api/up')).status, 200, 'served while Redis is up')
  const forwarded = upstream.seen.length
  await server.stop() // SIGKILL

  const answers: Answer[] = []
  for (let i = 0; i < 20; i++) answers.push(await send(`/api/down/${i}`))
  t.same([...new Set(answers.map((a) => `${a.status} ${a.code ?? ''}`))], ['503 STORE_UNAVAILABLE'], 'every answer is 503 STORE_UNAVAILABLE')
  t.ok(answers.every((a) => a.retryAfter !== undefined && /^[1-9]\d*$/.test(a.retryAfter)), 'every 503 has Retry-After')
  const slowest = Math.max(...answers.map((a) => a.ms))
  t.ok(slowest < 1000, `each answered in under 1 s (slowest ${Math.round(slowest)} ms)`)
  t.comment(`Redis down: 20 sequential 503s, latency ms min ${Math.round(Math.min(...answers.map((a) => a.ms)))} max ${Math.round(slowest)}`)

  const ready = await within(3000, async () => {
    const r = await readyz()
    return r.status === 503 && /redis/.test(r.reason ?? '')
  })
  t.not(ready, null, '/readyz is 503 with a redis reason')
  t.match(await readyz(), { status: 503, reason: /redis/ })
  const health = await request(gw.url + '/healthz')
  t.equal(health.statusCode, 200, '/healthz stays 200')
  t.same(await health.body.json(), { status: 'ok' })

  // A flood while Redis is away: nothing queues (no offline queue), every request fails fast.
  const heapBefore = process.memoryUsage().heapUsed
  const started = performance.now()
  const flood = await Promise.all(Array.from({ length: 200 }, async (_, i) => await send(`/api/flood/${i}`)))
  const floodMs = performance.now() - started
  t.equal(flood.filter((a) => a.status === 503 && a.code === 'STORE_UNAVAILABLE').length, 200, 'all 200 concurrent requests answered 503')
  t.ok(floodMs < 5000, `the flood was answered in ${Math.round(floodMs)} ms`)
  const client = gw.app.redis as unknown as { offlineQueue: { length: number }, commandQueue: { length: number } }
  t.equal(client.offlineQueue.length, 0, 'no command waits in the offline queue')
  t.equal(client.commandQueue.length, 0, 'no command waits for a reply')
  t.equal(upstream.seen.length, forwarded, 'nothing was forwarded while Redis was down')
  t.comment(`flood of 200 while down: ${Math.round(floodMs)} ms; heap ${Math.round(heapBefore / 1e6)} → ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB`)
  t.ok(gw.app.server.listening, 'the gateway is still listening')

  // Same port, empty data set and empty script cache: the token must be created again.
  await server.start()
  const restartedAt = Date.now()
  admin.disconnect()
  admin = adminClient()
  token = await createTestToken(server.url)
  const recovered = await within(5000, async () => (await send('/api/recovered')).status === 200, 100)
  t.not(recovered, null, 'admitted again within 5 s of the restart')
  t.comment(`recovery: first 200 ${Date.now() - restartedAt} ms after redis-server answered PING again`)
  t.equal(upstream.seen.length, forwarded + 1, 'the first admitted request is forwarded')
  t.not(await within(3000, async () => (await readyz()).status === 200), null, '/readyz is 200 again')
})

t.test('Redis Cluster: a master killed gives fast 503s for its tokens; restarted, the cluster serves again', async (t) => {
  const cluster = await new RedisCluster().start()
  t.teardown(() => cluster.close())
  const cgw = await startGateway({ REDIS_CLUSTER_NODES: cluster.nodes, ROUTES: `/api=${upstream.url}`, LOG_LEVEL: 'warn' })
  t.teardown(() => cgw.app.close())
  const nodes = cluster.nodeClients()
  for (const n of nodes) n.on('error', () => {})
  t.teardown(() => { for (const n of nodes) n.disconnect() })
  /** A token whose keys live on master `i` (or on any other master when `other`). */
  const tokenOn = async (i: number, other = false): Promise<TestToken> => {
    for (;;) {
      const tok = await createClusterTestToken(cluster.nodes)
      // Another master answers MOVED for a key it does not own.
      const onI = await nodes[i]?.exists(tokenKeys('portcullis:', digestApiKey(tok.key)).record).catch(() => 0) === 1
      if (onI !== other) return tok
    }
  }
  const onDead = await tokenOn(0)
  const onLive = await tokenOn(0, true)
  const at = async (tok: TestToken): Promise<Answer> => {
    const started = performance.now()
    const res = await request(cgw.url + '/api/cluster', { headers: { authorization: tok.bearer } })
    const text = await res.body.text()
    const code = res.statusCode === 200 ? null : (JSON.parse(text) as { code?: string }).code ?? null
    return { status: res.statusCode, code, retryAfter: res.headers['retry-after'] as string | undefined, ms: performance.now() - started }
  }
  const creadyz = async (): Promise<{ status: number, reason?: string }> => {
    const res = await request(cgw.url + '/readyz')
    return { ...(await res.body.json() as { reason?: string }), status: res.statusCode }
  }
  t.equal((await at(onDead)).status, 200)
  t.equal((await at(onLive)).status, 200)
  const before = await creadyz()
  t.equal(before.status, 200, `/readyz is 200 while every master answers (${before.reason ?? 'ready'})`)

  await cluster.stopNode(0)
  const forwarded = upstream.seen.length
  const dead: Answer[] = []
  const live: Answer[] = []
  for (let i = 0; i < 10; i++) {
    dead.push(await at(onDead))
    live.push(await at(onLive))
    await sleep(100)
  }
  t.same([...new Set(dead.map((a) => `${a.status} ${a.code ?? ''}`))], ['503 STORE_UNAVAILABLE'], 'the dead master\'s token: 503 STORE_UNAVAILABLE')
  t.ok(dead.every((a) => a.retryAfter !== undefined), 'with Retry-After')
  // A live master's token passes until the cluster declares itself failed (cluster-node-timeout 2 s), then 503s.
  t.ok(live.every((a) => a.status === 200 || (a.status === 503 && a.code === 'STORE_UNAVAILABLE')), 'a live master\'s token: 200 or 503, never 401/500')
  const slowest = Math.max(...dead.map((a) => a.ms), ...live.map((a) => a.ms))
  t.ok(slowest < 1000, `each answered in under 1 s (slowest ${Math.round(slowest)} ms)`)
  t.equal(upstream.seen.length, forwarded + live.filter((a) => a.status === 200).length, 'only admitted requests were forwarded')
  // cluster-node-timeout is 2 s: then the cluster declares itself failed and readiness follows.
  const unready = await within(8000, async () => /cluster_state is fail/.test((await creadyz()).reason ?? ''), 100)
  t.not(unready, null, '/readyz turns 503 once the cluster state is fail')
  t.comment(`cluster, master down: dead-slot 503s in ≤ ${Math.round(Math.max(...dead.map((a) => a.ms)))} ms; live-slot answers ${live.map((a) => a.status).join(' ')}`)

  await cluster.startNode(0) // rejoins from nodes.conf, with an empty data set
  const restarted = Date.now()
  await cluster.waitUntilOk(restarted + 20_000)
  const back = await within(5000, async () => (await at(onLive)).status === 200, 100)
  t.not(back, null, 'the live master\'s token passes again')
  t.not(await within(5000, async () => (await creadyz()).status === 200, 100), null, '/readyz is 200 again')
  const fresh = await tokenOn(0)
  t.equal((await at(fresh)).status, 200, 'a token on the restarted master passes')
  t.comment(`cluster recovery: 200 again ${Date.now() - restarted} ms after the master was restarted`)
})
