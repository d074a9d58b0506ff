// One consumer must not take a route down (docs/forwarding.md): uploads that trickle one byte every
// 2 s, from one token, over real sockets. With the 130 of them and the default pool and
// bound, and at a reduced scale with both configured small, another token's GET on the same route
// is answered 200 within 1 s; the token over its bound is refused with 429 CONCURRENCY_LIMITED before
// any body byte is read. And the default bound never refuses one token over ~150 keep-alive connections.
import t from 'tap'
import { Pool, request } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM, type TestGateway } from '../helpers/gateway.js'
import { createTestToken, type TestToken } from '../helpers/tokens.js'
import { RawConnection, header, json, type RawResponse } from '../helpers/raw-http.js'
import { valueOf } from '../helpers/prometheus.js'
import { until } from '../helpers/until.js'

const redis = await sharedRedis()
// A year's window (T = 315 s): the remaining count does not refill during the test, so each unit spent shows.
const attacker = await createTestToken(redis.url, { rate_limit: 100_000, window_seconds: 31_536_000 })
const victim = await createTestToken(redis.url)
let inFlightUpstream = 0
let maxInFlightUpstream = 0
const up = await new Upstream((req, res) => {
  // /api/delay: answered after 1.5 s, so that many requests are in flight at once even on a busy machine.
  const wait = req.url?.startsWith('/api/delay') === true ? 1500 : 0
  setTimeout(() => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ url: req.url }))
  }, wait)
}).start()
up.onStart = (_req, res) => {
  inFlightUpstream++
  maxInFlightUpstream = Math.max(maxInFlightUpstream, inFlightUpstream)
  res.once('close', () => { inFlightUpstream-- }) // answered, or its connection gone
}
const closers: Array<() => Promise<void> | void> = []
t.teardown(async () => {
  for (const close of closers.reverse()) await close()
  await up.close()
  await redis.close()
})

async function gateway (env: Record<string, string>): Promise<TestGateway> {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${up.url}`, UPSTREAM_TIMEOUT_MS: '2000', ...env })
  closers.push(async () => { await gw.app.close() })
  return gw
}

async function metrics (gw: TestGateway): Promise<string> {
  return await (await request(gw.url + '/metrics')).body.text()
}

/**
 * `count` chunked uploads from `token`, each sending its head and one byte at once, then one more
 * byte every 2 s until `stop()`; a refused one gets its answer in `answers`.
 */
async function trickle (gw: TestGateway, token: TestToken, count: number): Promise<{ conns: RawConnection[], answers: Array<RawResponse | null>, stop: () => void }> {
  const conns = await Promise.all(Array.from({ length: count }, async () => await RawConnection.open(gw.url)))
  const answers: Array<RawResponse | null> = conns.map(() => null)
  conns.forEach((c, i) => {
    c.socket.write(`POST /api/upload/${i} HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n` +
      'Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n')
    c.response().then((res) => { answers[i] = res }, () => {})
  })
  const timer = setInterval(() => { for (const c of conns) if (!c.closed) c.socket.write('1\r\nx\r\n') }, 2000)
  const stop = (): void => { clearInterval(timer); for (const c of conns) c.close() }
  closers.push(stop)
  return { conns, answers, stop }
}

/** Another consumer's GET, with its time; gives up after 5 s (the unfixed gateway hangs for minutes). */
async function victimGet (gw: TestGateway): Promise<{ status: number | string, ms: number, body: string }> {
  const started = performance.now()
  try {
    const res = await request(gw.url + '/api/victim', { headers: { authorization: victim.bearer }, signal: AbortSignal.timeout(5000) })
    return { status: res.statusCode, ms: performance.now() - started, body: await res.body.text() }
  } catch (err) {
    return { status: (err as Error).name, ms: performance.now() - started, body: '' }
  }
}

t.test('the issue\'s attack: 130 trickling uploads from one token, default pool and bound; another token\'s GET is 200 within 1 s', async (t) => {
  const gw = await gateway({})
  t.equal(gw.config.upstreamMaxConnections, 512)
  t.equal(gw.config.maxInFlightPerToken, 256)
  const startedBefore = up.started
  const attack = await trickle(gw, attacker, 130)
  // The old pool of 128 connections held 128 of them and queued the rest.
  t.ok(await until(() => up.started - startedBefore >= 130), `all 130 uploads reached the upstream (${up.started - startedBefore})`)
  t.ok(await until(async () => valueOf(await metrics(gw), 'portcullis_proxy_in_flight_requests') === 130), 'the gauge counts the 130 in flight')
  await sleep(2100) // at least one more trickled byte each: the uploads are alive, not cut
  t.equal(attack.answers.filter((a) => a !== null).length, 0, 'no upload was refused or cut: 130 is far below the bound')

  const got = await victimGet(gw)
  t.equal(got.status, 200, 'the other token is served')
  t.ok(got.ms < 1000, `within 1 s (${Math.round(got.ms)} ms)`)
  t.same(JSON.parse(got.body === '' ? '{}' : got.body), { url: '/api/victim' })

  attack.stop()
  t.ok(await until(async () => valueOf(await metrics(gw), 'portcullis_proxy_in_flight_requests') === 0), 'the attackers leaving frees every place')
  t.ok(await until(() => inFlightUpstream === 0), `and every upstream request was aborted (${inFlightUpstream} open)`)
})

t.test('pool of 8, bound of 4: 20 trickling uploads from one token hold 4; 16 are refused before any body byte; another token is served', async (t) => {
  const gw = await gateway({ UPSTREAM_MAX_CONNECTIONS: '8', MAX_IN_FLIGHT_PER_TOKEN: '4' })
  const startedBefore = up.started
  const attack = await trickle(gw, attacker, 20)
  t.ok(await until(() => attack.answers.filter((a) => a !== null).length >= 16), '16 answers came back')
  await sleep(300) // any further (wrong) answer or forwarded request would show by now
  const refused = attack.answers.filter((a): a is RawResponse => a !== null)
  t.equal(refused.length, 16, 'exactly the 16 over the bound were answered')
  t.equal(up.started - startedBefore, 4, 'only the 4 admitted reached the upstream')
  for (const res of refused) {
    t.equal(res.status, 429)
    t.same(json(res), { statusCode: 429, code: 'CONCURRENCY_LIMITED', error: 'Too Many Requests', message: 'This token already has 4 requests in flight on this gateway; retry in 1 s' })
    t.equal(header(res, 'retry-after'), '1')
    t.equal(header(res, 'connection'), 'close', 'the unread body is not drained: the connection closes')
    t.match(header(res, 'ratelimit'), /^"default";r=\d+;t=\d+$/, 'the quota fields are there, as on every 429')
    t.ok(header(res, 'x-request-id'))
  }
  // The refusal runs after the gate call: each one spent a unit of quota (docs/rate-limiting.md).
  const remaining = refused.map((r) => Number(/r=(\d+)/.exec(header(r, 'ratelimit') ?? '')?.[1])).sort((a, b) => b - a)
  t.equal(new Set(remaining).size, 16, 'every refusal has its own remaining count: each spent one')
  const closedIndexes = attack.answers.flatMap((a, i) => a === null ? [] : [i])
  t.ok(await until(() => closedIndexes.every((i) => attack.conns[i]?.closed === true), 3000), 'the refused connections were closed by the gateway')

  const got = await victimGet(gw)
  t.equal(got.status, 200, 'the other token is served')
  t.ok(got.ms < 1000, `within 1 s (${Math.round(got.ms)} ms)`)
  const same = await request(gw.url + '/api/again', { headers: { authorization: attacker.bearer } })
  t.equal(same.statusCode, 429, 'the attacking token\'s GET is refused too while it holds 4')
  t.equal(((await same.body.json()) as { code: string }).code, 'CONCURRENCY_LIMITED')

  const text = await metrics(gw)
  t.equal(valueOf(text, 'portcullis_gateway_errors_total', { route: '/api', code: 'CONCURRENCY_LIMITED' }), 17)
  t.equal(valueOf(text, 'portcullis_proxy_in_flight_requests'), 4)
  attack.stop()
  t.ok(await until(async () => valueOf(await metrics(gw), 'portcullis_proxy_in_flight_requests') === 0), 'no leak once they leave')
  const after = await request(gw.url + '/api/after', { headers: { authorization: attacker.bearer } })
  t.equal(after.statusCode, 200, 'the token is admitted again')
  await after.body.dump()
})

t.test('default settings: one token over 150 concurrent keep-alive connections is never refused', async (t) => {
  const gw = await gateway({ UPSTREAM_TIMEOUT_MS: '30000' })
  const client = new Pool(gw.url, { connections: 150, pipelining: 1 })
  closers.push(async () => { await client.close() })
  maxInFlightUpstream = 0
  const statuses = new Map<number, number>()
  const rounds = 2
  await Promise.all(Array.from({ length: 150 }, async (_, i) => {
    for (let r = 0; r < rounds; r++) {
      const res = await client.request({ path: `/api/delay/${i}/${r}`, method: 'GET', headers: { authorization: attacker.bearer } })
      await res.body.dump()
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    }
  }))
  t.same([...statuses], [[200, 150 * rounds]], 'every request was answered 200')
  t.ok(maxInFlightUpstream >= 100, `the load was concurrent: ${maxInFlightUpstream} at once at the upstream`)
  const text = await metrics(gw)
  t.equal(valueOf(text, 'portcullis_gateway_errors_total', { code: 'CONCURRENCY_LIMITED' }), 0)
  t.ok(await until(async () => valueOf(await metrics(gw), 'portcullis_proxy_in_flight_requests') === 0), 'and nothing is left in flight')
})
