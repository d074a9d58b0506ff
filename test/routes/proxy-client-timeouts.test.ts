// The clocks of a proxied request over real sockets (docs/forwarding.md): the client body idle
// timeout (408 REQUEST_TIMEOUT, the upstream request aborted, never a 500) and the route timeout
// counting the wait for a pooled connection (504 UPSTREAM_TIMEOUT, kind `pool`, not a breaker failure).
import t from 'tap'
import { request } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM, type TestGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection, header, json } from '../helpers/raw-http.js'
import { valueOf } from '../helpers/prometheus.js'
import { until } from '../helpers/until.js'

const redis = await sharedRedis()
const token = await createTestToken(redis.url)
const closers: Array<() => Promise<void> | void> = []
t.teardown(async () => {
  for (const close of closers.reverse()) await close()
  await redis.close()
})

/** What the upstream saw of each request: its path and how it ended. */
interface Watched { url: string, ended: 'complete' | 'aborted' | null, bytes: number }

async function upstream (): Promise<{ up: Upstream, watched: Watched[], hold: { release: () => void } }> {
  const watched: Watched[] = []
  const holds: ServerResponse[] = []
  const up = await new Upstream((req, res) => {
    // /api/hold: head at once, then a byte every 100 ms until released: the connection stays busy.
    if (req.url?.startsWith('/api/hold') === true) {
      res.writeHead(200, { 'content-type': 'text/plain' })
      const timer = setInterval(() => res.write('.'), 100)
      res.once('close', () => clearInterval(timer))
      holds.push(res)
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ url: req.url }))
  }).start()
  up.onStart = (req: IncomingMessage, res: ServerResponse) => {
    const w: Watched = { url: req.url ?? '', ended: null, bytes: 0 }
    watched.push(w)
    req.on('data', (c: Buffer) => { w.bytes += c.length })
    req.once('end', () => { w.ended = 'complete' })
    req.once('close', () => { if (!req.complete) w.ended = 'aborted' })
    // /api/early: the upstream answers its head before the body has arrived.
    if (req.url?.startsWith('/api/early') === true) {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('early ')
    }
  }
  closers.push(async () => { await up.close() })
  return { up, watched, hold: { release: () => { for (const r of holds.splice(0)) r.end('done') } } }
}

async function gateway (env: Record<string, string>, routes: string): Promise<TestGateway> {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: routes, ...env })
  closers.push(async () => { await gw.app.close() })
  return gw
}

async function metrics (gw: TestGateway): Promise<string> {
  return await (await request(gw.url + '/metrics')).body.text()
}

t.test('client body idle timeout: no body byte for CLIENT_BODY_TIMEOUT_MS is a 408, the upstream request is aborted', async (t) => {
  const { up, watched } = await upstream()
  const gw = await gateway({ CLIENT_BODY_TIMEOUT_MS: '300', CIRCUIT_FAILURE_THRESHOLD: '1' }, `/api=${up.url}`)
  const head = (path: string, length: number): string =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`

  for (const [path, sent] of [['/api/stalls-midway', 'ten bytes!'], ['/api/stalls-at-once', '']] as const) {
    const c = await RawConnection.open(gw.url)
    closers.push(() => c.close())
    const started = performance.now()
    const res = await c.request(head(path, 100) + sent)
    const ms = performance.now() - started
    t.equal(res.status, 408, path)
    t.same(json(res), { statusCode: 408, code: 'REQUEST_TIMEOUT', error: 'Request Timeout', message: 'No request body byte arrived for 300 ms' })
    t.equal(header(res, 'connection'), 'close')
    t.ok(header(res, 'x-request-id'))
    t.ok(ms >= 250 && ms < 5000, `after about 300 ms (${Math.round(ms)} ms)`)
    t.ok(await c.waitClosed(3000), 'the connection is closed: the rest of the body is never read')
    if (sent === '') {
      // undici writes the request head with the first body byte: without one, nothing reached the upstream.
      t.notOk(watched.some((x) => x.url === path), 'the upstream never saw a request without a body byte')
      continue
    }
    t.ok(await until(() => watched.find((x) => x.url === path)?.ended != null), 'the upstream saw the request end')
    const w = watched.find((x) => x.url === path)
    t.equal(w?.ended, 'aborted', `the upstream saw an aborted request (${w?.bytes ?? 0} bytes)`)
  }
  t.equal(up.seen.length, 0, 'no upstream handler ever saw a complete request')

  // A trickle faster than the timeout is not cut; the route timeout (default 30 s) is not in the way either.
  const c = await RawConnection.open(gw.url)
  closers.push(() => c.close())
  c.socket.write(`POST /api/trickle HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\nTransfer-Encoding: chunked\r\n\r\n`)
  for (let i = 0; i < 8; i++) { c.socket.write('1\r\nx\r\n'); await sleep(150) } // 1.2 s, gaps of 150 ms
  const ok = await c.request('0\r\n\r\n')
  t.equal(ok.status, 200, 'a slow but steady upload is forwarded')
  t.equal(up.last().bodyBytes, 8)

  const text = await metrics(gw)
  t.equal(valueOf(text, 'portcullis_gateway_errors_total', { route: '/api', code: 'REQUEST_TIMEOUT' }), 2)
  t.equal(valueOf(text, 'portcullis_http_requests_total', { route: '/api', status_class: '5xx' }), 0, 'never a 500')
  t.equal(valueOf(text, 'portcullis_upstream_errors_total', { route: '/api' }), 0, 'an idle client is no upstream failure')
  t.equal(valueOf(text, 'portcullis_circuit_transitions_total', { route: '/api' }), 0, 'threshold 1, yet the breaker did not open')
  t.equal(valueOf(text, 'portcullis_proxy_in_flight_requests'), 0)
})

t.test('client body idle after the upstream answered: the response is cut, never ended cleanly', async (t) => {
  const { up, watched } = await upstream()
  const gw = await gateway({ CLIENT_BODY_TIMEOUT_MS: '300' }, `/api=${up.url}`)
  const c = await RawConnection.open(gw.url)
  closers.push(() => c.close())
  c.socket.write(`POST /api/early HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\nContent-Length: 100\r\n\r\nabc`)
  t.ok(await c.waitClosed(5000), 'the gateway closed the connection')
  await t.rejects(c.response(), /connection closed before a complete response/, 'the client never sees a clean end')
  t.ok(await until(() => watched[0]?.ended === 'aborted'), 'the upstream request was aborted')
})

// undici makes a single Client for a limit of 1 connection and a Pool above: both are covered.
for (const size of [1, 2]) {
  t.test(`waiting for a pooled connection counts in the route timeout: pool of ${size} busy, the next request is a 504 in time`, async (t) => {
    const { up, watched, hold } = await upstream()
    const routes = JSON.stringify([{ prefix: '/api', upstream: up.url, timeoutMs: 500, circuitFailureThreshold: 1 }])
    const gw = await gateway({ UPSTREAM_MAX_CONNECTIONS: String(size), MAX_IN_FLIGHT_PER_TOKEN: '0' }, routes)
    for (let i = 0; i < size; i++) {
      const holder = await RawConnection.open(gw.url)
      closers.push(() => holder.close())
      holder.socket.write(`GET /api/hold HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`)
    }
    t.ok(await until(() => watched.length === size), 'every pooled connection is busy')

    const started = performance.now()
    const res = await request(gw.url + '/api/second', { headers: { authorization: token.bearer }, signal: AbortSignal.timeout(5000) })
    const ms = performance.now() - started
    t.equal(res.statusCode, 504)
    t.same(await res.body.json(), { statusCode: 504, code: 'UPSTREAM_TIMEOUT', error: 'Gateway Timeout', message: 'The upstream did not answer within 500 ms' })
    t.ok(ms >= 400 && ms < 3000, `within its timeout (${Math.round(ms)} ms)`)
    let text = await metrics(gw)
    t.equal(valueOf(text, 'portcullis_upstream_errors_total', { route: '/api', kind: 'pool' }), 1, 'counted as a wait for the pool')
    t.equal(valueOf(text, 'portcullis_upstream_errors_total', { route: '/api', kind: 'timeout' }), 0)
    t.equal(valueOf(text, 'portcullis_circuit_transitions_total', { route: '/api', to: 'open' }), 0, 'a full pool says nothing about the upstream: threshold 1, still closed')

    hold.release()
    const third = await request(gw.url + '/api/third', { headers: { authorization: token.bearer }, signal: AbortSignal.timeout(5000) })
    t.equal(third.statusCode, 200, 'once the connection is free, requests flow')
    await third.body.dump()
    await sleep(200)
    t.same(watched.map((w) => w.url), [...Array(size).fill('/api/hold'), '/api/third'], 'the request that timed out in the queue never reached the upstream')
    text = await metrics(gw)
    t.equal(valueOf(text, 'portcullis_proxy_in_flight_requests'), 0)
  })
}
