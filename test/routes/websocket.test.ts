// WebSocket upgrades through the gateway over real sockets: a `ws` echo upstream, the handshake's
// checks in the proxy's order (400, 404, 401, 403, 429, 503) answered as HTTP with the JSON body
// before anything reaches the upstream, the upstream's own refusals and failures, the log line
// and the metrics of a tunnel.
import t from 'tap'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createHttpsServer } from 'node:https'
import { sharedRedis, freePort } from '../helpers/redis.js'
import { startGateway, CALM, type TestGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { Upstream } from '../helpers/upstream.js'
import { WsUpstream } from '../helpers/ws-upstream.js'
import { rawHandshake, openWs, nextMessage, closedWithin } from '../helpers/ws-client.js'
import { RawConnection, rawRequest, header, json } from '../helpers/raw-http.js'
import { valueOf } from '../helpers/prometheus.js'
import { until } from '../helpers/until.js'

const redis = await sharedRedis()
const up = await new WsUpstream().start()
const plain = await new Upstream().start()
const hangs = createServer(() => {}) // accepts and never answers
hangs.listen(0, '127.0.0.1')
await once(hangs, 'listening')
const hangsPort = (hangs.address() as { port: number }).port
const downPort = await freePort()
const token = await createTestToken(redis.url, { allowed_routes: ['GET /ws/*', 'GET /plain/*', 'GET /down/*', 'GET /hang/*'] })
const gw: TestGateway = await startGateway({
  ...CALM,
  REDIS_URL: redis.url,
  ROUTES: JSON.stringify([
    { prefix: '/ws', upstream: up.url },
    { prefix: '/plain', upstream: plain.url },
    { prefix: '/down', upstream: `http://127.0.0.1:${downPort}`, circuitFailureThreshold: 2, circuitCooldownMs: 60_000 },
    { prefix: '/hang', upstream: `http://127.0.0.1:${hangsPort}`, timeoutMs: 300 }
  ])
})
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await plain.close()
  hangs.close()
  await redis.close()
})

const metrics = async (): Promise<string> => await gw.app.metrics.registry.metrics()

t.test('frames both ways through the gateway: text, binary, 1 MB; headers; metrics; one log line', async (t) => {
  const before = up.upgrades.length
  const ws = await openWs(gw.url, '/ws/chat?room=1', token.bearer, ['chat.v1', 'chat.v0'])
  t.equal(ws.protocol, 'chat.v1', 'the upstream\'s Sec-WebSocket-Protocol reaches the client')
  const seen = up.upgrades[before]
  t.ok(seen, 'the upstream saw the upgrade')
  t.equal(seen?.url, '/ws/chat?room=1', 'path and query forwarded unchanged')
  t.equal(seen?.headers.authorization, undefined, 'no Authorization upstream')
  t.equal(seen?.headers['x-consumer-id'], token.id)
  t.equal(seen?.headers['x-forwarded-for'], '127.0.0.1')
  t.match(seen?.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.equal(seen?.headers.upgrade, 'websocket')
  t.match(seen?.headers.connection, /upgrade/i)
  t.ok(seen?.headers['sec-websocket-key'], 'Sec-WebSocket-* pass for this hop')
  t.equal(valueOf(await metrics(), 'portcullis_websocket_connections', { route: '/ws' }), 1, 'gauge: one open tunnel')

  ws.send('hello')
  t.same(await nextMessage(ws), { data: Buffer.from('hello'), isBinary: false }, 'text echoed as text')
  const bin = randomBytes(4096)
  ws.send(bin)
  t.same(await nextMessage(ws), { data: bin, isBinary: true }, 'binary echoed as binary')
  const big = randomBytes(1024 * 1024)
  ws.send(big)
  const back = await nextMessage(ws)
  t.ok(back.isBinary && back.data.equals(big), '1 MB message echoed byte for byte')

  ws.close(1000, 'bye')
  t.equal(await closedWithin(ws, 5000), 1000, 'a clean close passes through')
  await waitFor(async () => valueOf(await metrics(), 'portcullis_websocket_connections', { route: '/ws' }) === 0)
  const text = await metrics()
  // In a clean close the server ends the TCP connection first (RFC 6455 section 7.1.1): upstream_closed.
  t.equal(valueOf(text, 'portcullis_websocket_closed_total', { route: '/ws', reason: 'upstream_closed' }), 1)
  t.equal(valueOf(text, 'portcullis_http_requests_total', { route: '/ws', method: 'GET', status_class: '1xx' }), 1, 'the 101 is a request')
  const lines = gw.logs.records().filter((r) => r.msg === 'request' && r.status === 101)
  t.equal(lines.length, 1, 'one request line for the upgrade')
  t.match(lines[0], { method: 'GET', path: '/ws/chat', route: '/ws', remoteAddress: '127.0.0.1', consumer: token.id, rateLimit: 'allowed', websocket: { closed: 'upstream_closed' } })
  t.ok(((lines[0]?.websocket as { bytesIn: number }).bytesIn) > 1024 * 1024, 'bytes counted')
  t.notOk(gw.logs.lines.some((l) => l.includes(token.key)), 'the token never reaches a log')
})

t.test('the 101 carries X-Request-Id, RateLimit headers and the upstream\'s Sec-WebSocket-Accept; bytes past the head flow', async (t) => {
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  // The first frame is sent in the same packet as the handshake: bytes already read past the head.
  const frame = maskedText('early')
  c.socket.write(Buffer.concat([Buffer.from(rawHandshake('/ws/x', [`Authorization: ${token.bearer}`, 'X-Request-Id: ws-req-1'])), frame]))
  const res = await c.response()
  t.equal(res.status, 101)
  t.equal(header(res, 'sec-websocket-accept'), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'RFC 6455 sample key → accept, from the upstream')
  t.equal(header(res, 'x-request-id'), 'ws-req-1')
  t.match(header(res, 'ratelimit'), /^"default";r=\d+;t=\d+$/)
  t.ok(header(res, 'ratelimit-policy'))
  t.equal(up.upgrades[up.upgrades.length - 1]?.headers['x-request-id'], 'ws-req-1')
  // The echo of the early frame comes back unmasked: [0x81, 5, 'early'].
  await waitFor(async () => readBuffered(c).length >= 7)
  t.same(readBuffered(c).subarray(0, 7), Buffer.from([0x81, 5, ...Buffer.from('early')]))
})

t.test('refusals come before anything reaches the upstream, as HTTP with the JSON body, and close the socket', async (t) => {
  const forbidden = await createTestToken(redis.url, { allowed_routes: ['GET /plain/*'] })
  const postOnly = await createTestToken(redis.url, { allowed_routes: ['POST /ws/*'] })
  const cases: Array<[string, string, string[], number, string]> = [
    ['bad path', '/ws/a%2Fb', [`Authorization: ${token.bearer}`], 400, 'BAD_PATH'],
    ['no route', '/nowhere', [`Authorization: ${token.bearer}`], 404, 'ROUTE_NOT_FOUND'],
    ['no token', '/ws/x', [], 401, 'TOKEN_MISSING'],
    ['unknown token', '/ws/x', ['Authorization: Bearer pc_unknownunknownunknown'], 401, 'TOKEN_INVALID'],
    ['token in the query', `/ws/x?access_token=${token.key}`, [`Authorization: ${token.bearer}`], 401, 'TOKEN_INVALID'],
    ['forbidden route', '/ws/x', [`Authorization: ${forbidden.bearer}`], 403, 'ROUTE_FORBIDDEN'],
    ['the upgrade is a GET', '/ws/x', [`Authorization: ${postOnly.bearer}`], 403, 'ROUTE_FORBIDDEN']
  ]
  for (const [name, target, headers, status, code] of cases) {
    const connections = up.connections
    const c = await RawConnection.open(gw.url)
    const res = await c.request(rawHandshake(target, [...headers, 'X-Request-Id: refusal-1']))
    t.equal(res.status, status, `${name}: status`)
    t.same(json(res), { statusCode: status, code, error: json(res).error, message: json(res).message }, `${name}: JSON body`)
    t.equal(json(res).code, code, `${name}: code`)
    t.equal(header(res, 'content-type'), 'application/json; charset=utf-8')
    t.equal(header(res, 'x-request-id'), 'refusal-1', `${name}: X-Request-Id`)
    if (status === 401) t.match(header(res, 'www-authenticate'), /^Bearer/, `${name}: WWW-Authenticate`)
    t.ok(await c.waitClosed(5000), `${name}: the gateway closed the socket`)
    t.equal(up.connections, connections, `${name}: the upstream saw no connection`)
    t.notOk(JSON.stringify(res.head + res.body.toString()).includes(token.key), `${name}: the token is not echoed`)
  }
  const text = await metrics()
  t.ok(valueOf(text, 'portcullis_gateway_errors_total', { route: '/ws', code: 'TOKEN_MISSING' }) >= 1, 'counted as gateway errors')
  const refusals = gw.logs.records().filter((r) => r.msg === 'request' && r.reqId === 'refusal-1')
  t.equal(refusals.length, cases.length, 'one request log line per refused upgrade')
  t.ok(refusals.every((r) => r.remoteAddress === '127.0.0.1' && typeof r.code === 'string'), 'each names the client address and its code')
})

t.test('a client that vanishes or an upstream that drops: both sockets freed, reason counted', async (t) => {
  const ws = await openWs(gw.url, '/ws/a', token.bearer)
  const upstreamOpen = up.openConnections
  ws.terminate()
  await waitFor(() => up.openConnections === upstreamOpen - 1)
  const ws2 = await openWs(gw.url, '/ws/b', token.bearer)
  for (const s of up.sockets) s.terminate()
  t.equal(await closedWithin(ws2, 5000), 1006, 'the client sees the upstream go')
  await waitFor(async () => valueOf(await metrics(), 'portcullis_websocket_connections', { route: '/ws' }) === 0)
  const text = await metrics()
  t.ok(valueOf(text, 'portcullis_websocket_closed_total', { route: '/ws', reason: 'client_closed' }) +
    valueOf(text, 'portcullis_websocket_closed_total', { route: '/ws', reason: 'error' }) >= 1, 'client gone counted')
  t.ok(valueOf(text, 'portcullis_websocket_closed_total', { route: '/ws', reason: 'upstream_closed' }) >= 2, 'upstream gone counted')
})

t.test('over the limit: 429 with RateLimit headers and Retry-After; an upgrade counts as one request', async (t) => {
  const limited = await createTestToken(redis.url, { rate_limit: 1, burst: 1, window_seconds: 3600, allowed_routes: ['/*'] })
  const ws = await openWs(gw.url, '/ws/once', limited.bearer)
  ws.terminate()
  const connections = up.connections
  const res = await rawRequest(gw.url, rawHandshake('/ws/twice', [`Authorization: ${limited.bearer}`]))
  t.equal(res.status, 429)
  t.equal(json(res).code, 'RATE_LIMITED')
  t.match(header(res, 'ratelimit'), /^"default";r=0;t=\d+$/)
  t.equal(header(res, 'ratelimit-policy'), '"default";q=1;w=3600')
  t.match(header(res, 'retry-after'), /^\d+$/)
  t.equal(up.connections, connections, 'the upstream saw no connection')
})

t.test('an upstream that refuses the upgrade: its answer is passed back', async (t) => {
  up.refuseWith = 'HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nX-Upstream: yes\r\nX-Request-Id: upstream-made\r\n\r\nnope'
  t.teardown(() => { up.refuseWith = null })
  const res = await rawRequest(gw.url, rawHandshake('/ws/x', [`Authorization: ${token.bearer}`, 'X-Request-Id: mine']))
  t.equal(res.status, 403)
  t.equal(res.body.toString(), 'nope')
  t.equal(header(res, 'x-upstream'), 'yes')
  t.equal(header(res, 'x-request-id'), 'mine', 'the gateway owns X-Request-Id')
  t.ok(header(res, 'ratelimit'), 'RateLimit headers as on any answer')
  t.equal(gw.logs.records().filter((r) => r.msg === 'request' && r.reqId === 'mine')[0]?.status, 403)
})

t.test('upstream down → 502, then the breaker opens → 503 CIRCUIT_OPEN; a hanging upstream → 504', async (t) => {
  for (let i = 0; i < 2; i++) {
    const res = await rawRequest(gw.url, rawHandshake('/down/x', [`Authorization: ${token.bearer}`]))
    t.equal(res.status, 502)
    t.equal(json(res).code, 'UPSTREAM_ERROR')
    t.equal(json(res).message, 'The upstream refused the connection')
  }
  const open = await rawRequest(gw.url, rawHandshake('/down/x', [`Authorization: ${token.bearer}`]))
  t.equal(open.status, 503, 'two failures opened the circuit')
  t.equal(json(open).code, 'CIRCUIT_OPEN')
  t.match(header(open, 'retry-after'), /^\d+$/)
  t.ok(header(open, 'ratelimit'), 'counted by the limiter, as any request')
  const started = performance.now()
  const slow = await rawRequest(gw.url, rawHandshake('/hang/x', [`Authorization: ${token.bearer}`]))
  t.equal(slow.status, 504)
  t.equal(json(slow).code, 'UPSTREAM_TIMEOUT')
  t.ok(performance.now() - started >= 250, 'after the route timeout')
  const text = await metrics()
  t.equal(valueOf(text, 'portcullis_upstream_errors_total', { route: '/down', kind: 'refused' }), 2)
  t.equal(valueOf(text, 'portcullis_upstream_errors_total', { route: '/hang', kind: 'timeout' }), 1)
})

t.test('an Upgrade other than websocket is served as a plain request, as before', async (t) => {
  const res = await rawRequest(gw.url, `GET /plain/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nAuthorization: ${token.bearer}\r\n\r\n`)
  t.equal(res.status, 200)
  t.equal(json(res).url, '/plain/x')
  t.equal(plain.last().headers.upgrade, undefined, 'Upgrade is hop-by-hop')
  const withBody = await rawRequest(gw.url, `POST /plain/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\nAuthorization: ${token.bearer}\r\n\r\nhi`)
  t.equal(withBody.status, 400)
  t.equal(json(withBody).code, 'BAD_REQUEST')
})

t.test('an https upstream is verified: a self-signed certificate is a 502, nothing tunnelled', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-ws-tls-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
  let upgrades = 0
  const tls = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) })
  tls.on('upgrade', (_req, socket) => { upgrades++; socket.destroy() })
  tls.listen(0, '127.0.0.1')
  await once(tls, 'listening')
  t.teardown(() => { tls.close() })
  const g = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/tls=https://127.0.0.1:${(tls.address() as { port: number }).port}` })
  t.teardown(async () => { await g.app.close() })
  const any = await createTestToken(redis.url)
  const res = await rawRequest(g.url, rawHandshake('/tls/x', [`Authorization: ${any.bearer}`]))
  t.equal(res.status, 502)
  t.equal(json(res).message, 'The upstream TLS certificate could not be verified')
  t.equal(upgrades, 0, 'the handshake never reached the unverified upstream')
})

/** A masked client text frame (RFC 6455 section 5.2) with a zero mask, so the payload is unchanged. */
function maskedText (s: string): Buffer {
  const payload = Buffer.from(s)
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload])
}

function readBuffered (c: RawConnection): Buffer {
  return (c as unknown as { buf: Buffer }).buf
}

async function waitFor (cond: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  if (!await until(cond, ms)) throw new Error('condition not met in time')
}
