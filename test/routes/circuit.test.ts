// The per-route circuit breaker end to end, over real sockets: an upstream that is stopped (so
// connections are refused) and started again on the same port, one that hangs, one that answers
// 500, and clients that leave before the upstream answers. Time bounds are wide: the cooldown is
// 500 ms, and a test only relies on it having passed after a sleep that is longer.
import t from 'tap'
import { request } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import type { IncomingMessage } from 'node:http'
import { freePort } from '../helpers/redis.js'
import { Upstream, type Handler } from '../helpers/upstream.js'
import { startGateway, CALM, type TestGateway } from '../helpers/gateway.js'
import { redisWithToken } from '../helpers/tokens.js'
import { valueOf } from '../helpers/prometheus.js'
import { RawConnection } from '../helpers/raw-http.js'
import { until as untilEvery } from '../helpers/until.js'

const COOLDOWN_MS = 500
const BREAKER = { circuitFailureThreshold: 3, circuitCooldownMs: COOLDOWN_MS }
const { redis, token, onEnd } = await redisWithToken()

interface Answer { status: number, code: string | undefined, body: string, retryAfter: string | undefined, rateLimit: string | undefined, at: number }

async function call (gw: TestGateway, path: string): Promise<Answer> {
  const res = await request(gw.url + path, { headers: { authorization: token.bearer } })
  const body = await res.body.text()
  const header = (name: string): string | undefined => res.headers[name] as string | undefined
  const code = header('content-type')?.startsWith('application/json') === true ? (JSON.parse(body) as { code?: string }).code : undefined
  return { status: res.statusCode, code, body, retryAfter: header('retry-after'), rateLimit: header('ratelimit'), at: performance.now() }
}

/** Calls every 25 ms until an answer is not a 503 CIRCUIT_OPEN (the probe's), within 10 s. */
async function untilAdmitted (gw: TestGateway, path: string): Promise<Answer> {
  const deadline = performance.now() + 10_000
  for (;;) {
    const a = await call(gw, path)
    if (a.code !== 'CIRCUIT_OPEN' || performance.now() > deadline) return a
    await sleep(25)
  }
}

/** Polls until `cond` holds (an event in another socket), within 10 s. */
const until = async (cond: () => boolean): Promise<boolean> => await untilEvery(cond, 10_000, 10)

async function metric (gw: TestGateway, name: string, labels: Record<string, string>): Promise<number> {
  const res = await request(gw.url + '/metrics')
  return valueOf(await res.body.text(), name, labels)
}

type CountingUpstream = Upstream & { connections: number }

/** A recording upstream that also counts TCP connections, so "never touched" covers connects too. */
async function upstream (handler?: Handler, port = 0): Promise<CountingUpstream> {
  const up = Object.assign(new Upstream(handler), { connections: 0 })
  up.server.on('connection', () => { up.connections++ })
  await up.start(port)
  onEnd(async () => { if (up.server.listening) await up.close() })
  return up
}

async function gateway (routes: object[], env: Record<string, string> = {}): Promise<TestGateway> {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: JSON.stringify(routes), ...env })
  onEnd(async () => { await gw.app.close() })
  return gw
}

t.test('3 refused connections open the circuit: the 4th is a 503 that never reaches the upstream; one probe closes it', async (t) => {
  const port = await freePort() // nothing listens there yet: connections are refused
  const other = await upstream()
  const gw = await gateway([
    { prefix: '/api', upstream: `http://127.0.0.1:${port}`, ...BREAKER },
    { prefix: '/other', upstream: other.url, ...BREAKER }
  ])
  for (let i = 1; i <= 3; i++) t.match(await call(gw, `/api/fail/${i}`), { status: 502, code: 'UPSTREAM_ERROR' }, `refused connection ${i}: 502`)
  const opened = performance.now()

  // The upstream is back at once, but the circuit is open: nothing may reach it.
  let holdProbe = false
  let releaseProbe = (): void => {}
  const up = await upstream((req, res) => {
    if (holdProbe) { holdProbe = false; releaseProbe = () => { res.end('probe') }; return }
    res.end(req.url)
  }, port)
  const refused = await call(gw, '/api/after')
  t.comment(`3rd failure → first CIRCUIT_OPEN: ${(refused.at - opened).toFixed(1)} ms (the very next request)`)
  t.match(refused, { status: 503, code: 'CIRCUIT_OPEN', retryAfter: '1' }, '503 CIRCUIT_OPEN, Retry-After: ceil(0.5 s) = 1')
  t.same(JSON.parse(refused.body), { statusCode: 503, code: 'CIRCUIT_OPEN', error: 'Service Unavailable', message: 'The upstream of this route is failing; retry in 1 s' })
  t.ok(refused.rateLimit !== undefined, 'it carries RateLimit: authenticated and counted by the limiter before the circuit check')
  t.equal(up.started, 0, 'the upstream saw no request')
  t.equal(up.connections, 0, 'and no connection attempt')
  t.match(await call(gw, '/other/x'), { status: 200 }, "another route's breaker is unaffected")
  t.equal(other.started, 1)

  t.equal(await metric(gw, 'portcullis_circuit_state', { route: '/api' }), 1, 'gauge: /api open')
  t.equal(await metric(gw, 'portcullis_circuit_state', { route: '/other' }), 0, 'gauge: /other closed')
  t.equal(await metric(gw, 'portcullis_circuit_transitions_total', { route: '/api', to: 'open' }), 1)
  t.equal(await metric(gw, 'portcullis_circuit_transitions_total', { route: '/other' }), 0)
  t.equal(await metric(gw, 'portcullis_gateway_errors_total', { route: '/api', code: 'CIRCUIT_OPEN' }), 1, 'the 503 is a gateway error…')
  t.equal(await metric(gw, 'portcullis_upstream_errors_total', { route: '/api', kind: 'refused' }), 3, '…and not an upstream error')

  // Past the cooldown: five requests at once, exactly one is the probe, held by the upstream meanwhile.
  await sleep(COOLDOWN_MS + 100 - (performance.now() - opened))
  holdProbe = true
  const answers: Answer[] = []
  const burst = Array.from({ length: 5 }, async (_, i) => { const a = await call(gw, `/api/burst/${i}`); answers.push(a); return a })
  t.ok(await until(() => answers.length === 4), 'four answered while the probe is in flight')
  t.ok(answers.every((a) => a.status === 503 && a.code === 'CIRCUIT_OPEN'), `the four were refused: ${JSON.stringify(answers.map((a) => a.code))}`)
  t.equal(up.started, 1, 'exactly one request reached the upstream: the probe')
  t.equal(await metric(gw, 'portcullis_circuit_state', { route: '/api' }), 2, 'gauge: half-open')
  releaseProbe()
  const probe = (await Promise.all(burst)).filter((a) => a.status !== 503)
  t.match(probe, [{ status: 200, body: 'probe' }], 'the probe got the upstream\'s answer')

  for (let i = 0; i < 3; i++) t.match(await call(gw, `/api/flow/${i}`), { status: 200, body: `/api/flow/${i}` }, 'closed: requests flow')
  t.equal(up.started, 4)
  t.equal(await metric(gw, 'portcullis_circuit_state', { route: '/api' }), 0, 'gauge: closed')
  for (const [to, n] of [['open', 1], ['half-open', 1], ['closed', 1]] as const) {
    t.equal(await metric(gw, 'portcullis_circuit_transitions_total', { route: '/api', to }), n, `transitions to ${to}`)
  }
})

t.test('a probe that fails re-opens the circuit for another cooldown', async (t) => {
  const port = await freePort()
  const gw = await gateway([{ prefix: '/flaky', upstream: `http://127.0.0.1:${port}`, ...BREAKER }])
  for (let i = 0; i < 3; i++) t.equal((await call(gw, '/flaky/x')).status, 502)
  const opened = performance.now()

  const probe = await untilAdmitted(gw, '/flaky/probe') // the upstream is still down
  const probeAfter = probe.at - opened
  t.comment(`first probe admitted ${probeAfter.toFixed(0)} ms after the circuit opened (cooldown ${COOLDOWN_MS} ms)`)
  t.match(probe, { status: 502, code: 'UPSTREAM_ERROR' }, 'the probe was forwarded and refused')
  t.ok(probeAfter >= COOLDOWN_MS - 100 && probeAfter < 5000, `not before the cooldown, soon after it (${probeAfter.toFixed(0)} ms)`)
  t.match(await call(gw, '/flaky/y'), { status: 503, code: 'CIRCUIT_OPEN', retryAfter: '1' }, 'open again at once')
  t.equal(await metric(gw, 'portcullis_circuit_transitions_total', { route: '/flaky', to: 'open' }), 2)
  t.equal(await metric(gw, 'portcullis_circuit_state', { route: '/flaky' }), 1)

  const up = await upstream(undefined, port)
  const second = await untilAdmitted(gw, '/flaky/second')
  const secondAfter = second.at - probe.at
  t.comment(`second probe admitted ${secondAfter.toFixed(0)} ms after the first one failed`)
  t.ok(secondAfter >= COOLDOWN_MS - 100, `a whole new cooldown (${secondAfter.toFixed(0)} ms)`)
  t.match(second, { status: 200 }, 'the upstream is back: the probe succeeds')
  t.match(await call(gw, '/flaky/z'), { status: 200 }, 'and the circuit is closed')
  t.equal(up.started, 2)
})

t.test('a 500 from the upstream is an answer: it never opens the circuit', async (t) => {
  const up = await upstream((_req, res) => { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('upstream broke') })
  const gw = await gateway([{ prefix: '/five', upstream: up.url, ...BREAKER }])
  for (let i = 0; i < 10; i++) t.match(await call(gw, `/five/${i}`), { status: 500, body: 'upstream broke' })
  t.equal(up.started, 10, 'all ten forwarded')
  t.equal(await metric(gw, 'portcullis_circuit_transitions_total', { route: '/five' }), 0)
})

t.test('timeouts count as failures', async (t) => {
  const up = await upstream(() => {}) // accepts and never answers
  const gw = await gateway([{ prefix: '/slow', upstream: up.url, timeoutMs: 200, circuitFailureThreshold: 2, circuitCooldownMs: 60_000 }])
  t.match(await call(gw, '/slow/1'), { status: 504, code: 'UPSTREAM_TIMEOUT' })
  t.match(await call(gw, '/slow/2'), { status: 504, code: 'UPSTREAM_TIMEOUT' })
  t.match(await call(gw, '/slow/3'), { status: 503, code: 'CIRCUIT_OPEN', retryAfter: '60' }, 'open, Retry-After is the whole cooldown')
  t.equal(up.started, 2)
})

t.test('CIRCUIT_FAILURE_THRESHOLD=0 never opens; a route may still turn its breaker on', async (t) => {
  const down = `http://127.0.0.1:${await freePort()}`
  const gw = await gateway([{ prefix: '/off', upstream: down }, { prefix: '/on', upstream: down, circuitFailureThreshold: 2 }],
    { CIRCUIT_FAILURE_THRESHOLD: '0' })
  for (let i = 0; i < 8; i++) t.match(await call(gw, '/off/x'), { status: 502, code: 'UPSTREAM_ERROR' }, `failure ${i + 1}: still forwarded`)
  t.equal(await metric(gw, 'portcullis_circuit_state', { route: '/off' }), 0)
  t.equal(await metric(gw, 'portcullis_circuit_transitions_total', { route: '/off' }), 0)
  t.equal(await metric(gw, 'portcullis_upstream_errors_total', { route: '/off', kind: 'refused' }), 8)
  t.equal((await call(gw, '/on/x')).status, 502)
  t.equal((await call(gw, '/on/x')).status, 502)
  t.match(await call(gw, '/on/x'), { status: 503, code: 'CIRCUIT_OPEN' }, 'the route override opens after 2')
})

/** An upstream that hangs while `hang` is true (else echoes), and reports when a request's socket closes. */
async function hangingUpstream (): Promise<{ up: CountingUpstream, state: { hang: boolean, closed: number } }> {
  const state = { hang: true, closed: 0 }
  const up = await upstream((req, res) => { if (!state.hang) res.end(req.url) })
  up.onStart = (req: IncomingMessage) => { req.socket.once('close', () => { state.closed++ }) }
  return { up, state }
}

/** Sends a request on a raw connection and leaves as soon as the upstream has it; false if it never gets there. */
async function leaveWhenForwarded (gw: TestGateway, up: Upstream, head: string): Promise<boolean> {
  const before = up.started
  const c = await RawConnection.open(gw.url)
  c.socket.write(head)
  const forwarded = await until(() => up.started > before || c.closed)
  c.close()
  return forwarded && up.started > before
}

t.test('a client that leaves before the upstream answers is not an upstream failure', async (t) => {
  const { up, state } = await hangingUpstream()
  const gw = await gateway([{ prefix: '/hang', upstream: up.url, timeoutMs: 300, circuitFailureThreshold: 1, circuitCooldownMs: 60_000 }])

  // A GET: the client leaving aborts the upstream request (queued or running).
  t.ok(await leaveWhenForwarded(gw, up, `GET /hang/get HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`), 'GET forwarded')
  t.ok(await until(() => state.closed === 1), 'the gateway gave up on the upstream')
  await sleep(50)
  t.equal(await metric(gw, 'portcullis_circuit_transitions_total', { route: '/hang' }), 0, 'threshold 1, yet the timeout did not open it')
  // An upload cut short: undici reports the client's reset as an upstream error at once.
  t.ok(await leaveWhenForwarded(gw, up, `PUT /hang/put HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\nContent-Length: 1000\r\n\r\nabc`), 'PUT forwarded')
  t.ok(await until(() => state.closed === 2), 'the upstream request was aborted')
  await sleep(50)
  t.equal(await metric(gw, 'portcullis_circuit_transitions_total', { route: '/hang' }), 0, 'nor did the reset')
  state.hang = false
  t.match(await call(gw, '/hang/next'), { status: 200, body: '/hang/next' }, 'the next request is forwarded')
  state.hang = true
  t.match(await call(gw, '/hang/timeout'), { status: 504 }, 'a timeout with the client still there…')
  t.match(await call(gw, '/hang/after'), { status: 503, code: 'CIRCUIT_OPEN' }, '…does count')
})

t.test('a probe whose client leaves frees the probe slot: its upstream request is aborted at once', async (t) => {
  const { up, state } = await hangingUpstream()
  const gw = await gateway([{ prefix: '/probe', upstream: up.url, timeoutMs: 1500, circuitFailureThreshold: 1, circuitCooldownMs: COOLDOWN_MS }])
  t.match(await call(gw, '/probe/open'), { status: 504 }, 'one timeout opens it')
  const opened = performance.now()
  await sleep(COOLDOWN_MS + 100)

  t.ok(await leaveWhenForwarded(gw, up, `GET /probe/gone HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`), 'the probe was forwarded')
  const left = performance.now()
  t.comment(`probe sent ${(left - opened).toFixed(0)} ms after the circuit opened`)
  t.ok(await until(() => state.closed === 2), 'the probe\'s upstream request was aborted')
  t.ok(performance.now() - left < 1400, `when its client left, not at the route timeout (${Math.round(performance.now() - left)} ms)`)
  await sleep(50)
  state.hang = false
  t.match(await call(gw, '/probe/next'), { status: 200, body: '/probe/next' }, 'the slot is free: the next request is the probe, and it closes the circuit')
  t.match(await call(gw, '/probe/flow'), { status: 200 })
  for (const [to, n] of [['open', 1], ['half-open', 1], ['closed', 1]] as const) {
    t.equal(await metric(gw, 'portcullis_circuit_transitions_total', { route: '/probe', to }), n, `transitions to ${to}: the client's leaving was no failure`)
  }
})
