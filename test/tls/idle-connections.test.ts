// Idle client connections on the TLS listener get the plain listener's limits: an HTTP/1.1
// keep-alive connection is closed after IDLE_CONNECTION_TIMEOUT_MS between requests, an HTTP/2
// session silent for as long gets GOAWAY (Fastify's http2SessionTimeout), and no response still
// coming is cut. The behaviour runs on a gateway built with the timeout shortened
// (BuildOptions.idleTimeoutMs); the shipped values are asserted on their own.
import t from 'tap'
import { once } from 'node:events'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM, type TestGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { makeTestCertificate } from '../helpers/tls.js'
import { h2Request, h2Session } from '../helpers/tls-clients.js'
import { IDLE_CONNECTION_TIMEOUT_MS } from '../../src/lib/config.js'
import { until } from '../helpers/until.js'

const SHORT_MS = 300
const SLOW_MS = 3 * SHORT_MS

const cert = makeTestCertificate()
const redis = await sharedRedis()
const up = await new Upstream((req, res) => {
  const answer = (): void => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ url: req.url }))
  }
  if (req.url?.endsWith('/slow') === true) setTimeout(answer, SLOW_MS)
  else answer()
}).start()
const token = await createTestToken(redis.url)
const base = { ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${up.url}` }
const tlsEnv = { ...base, TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile }
const tlsGw = await startGateway(tlsEnv)
const plainGw = await startGateway(base)
// The same TLS gateway with the idle timeout shortened, for the behaviour.
const shortGw = await startGateway(tlsEnv, { idleTimeoutMs: SHORT_MS })
const gateways: TestGateway[] = [tlsGw, plainGw, shortGw]
t.teardown(async () => {
  for (const g of gateways) await g.app.close()
  await up.close()
  await redis.close()
  cert.remove()
})

interface ListenerLimits { keepAliveTimeout?: number, requestTimeout?: number, headersTimeout?: number }
const limits = (g: TestGateway): ListenerLimits => {
  const s = g.app.server as unknown as ListenerLimits
  return { keepAliveTimeout: s.keepAliveTimeout, requestTimeout: s.requestTimeout, headersTimeout: s.headersTimeout }
}

/** An HTTP/1.1 connection over TLS (ALPN http/1.1) and its bytes so far. */
async function h1Connection (url: string): Promise<{ socket: TLSSocket, received: () => string, closed: Promise<number> }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: Number(new URL(url).port), ca: cert.cert, ALPNProtocols: ['http/1.1'] })
  await once(socket, 'secureConnect')
  let text = ''
  socket.on('data', (c: Buffer) => { text += c.toString('latin1') })
  socket.on('error', () => {})
  const closed = once(socket, 'close').then(() => Date.now())
  return { socket, received: () => text, closed }
}

t.test('the TLS listener has the plain listener\'s limits: idle HTTP/1.1 keep-alive and HTTP/2 sessions closed after 72 s, no cap on a request\'s duration', async (t) => {
  t.equal(IDLE_CONNECTION_TIMEOUT_MS, 72_000)
  t.same(limits(tlsGw), limits(plainGw), 'same HTTP/1.1 limits on both listeners')
  t.equal(limits(tlsGw).keepAliveTimeout, IDLE_CONNECTION_TIMEOUT_MS, 'an idle keep-alive connection is closed')
  t.equal(limits(tlsGw).requestTimeout, 0, 'an upload streams as long as it needs (Node would cut it at 300 s)')
  t.equal(tlsGw.app.initialConfig.http2SessionTimeout, IDLE_CONNECTION_TIMEOUT_MS, 'an HTTP/2 session silent that long gets GOAWAY')
  t.equal(limits(shortGw).keepAliveTimeout, SHORT_MS, 'idleTimeoutMs reaches the HTTP/1.1 side')
  t.equal(shortGw.app.initialConfig.http2SessionTimeout, SHORT_MS, 'and the HTTP/2 side')
})

t.test('HTTP/1.1 over TLS: an idle keep-alive connection is closed after the idle timeout, not while its response is coming', async (t) => {
  const c = await h1Connection(shortGw.url)
  t.teardown(() => c.socket.destroy())
  const sent = Date.now()
  c.socket.write(`GET /api/v1/slow HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`)
  t.ok(await until(() => c.received().includes('"/api/v1/slow"'), 10_000, 10), 'the slow answer arrived whole')
  const answered = Date.now()
  t.ok(answered - sent >= SLOW_MS - 50, `answered after ${answered - sent} ms: the connection was kept while the response was coming`)
  t.match(c.received(), /^HTTP\/1\.1 200 /)
  t.match(c.received(), /\r\nconnection: keep-alive\r\n/i)
  const closedAt = await Promise.race([c.closed, sleep(10_000).then(() => null)])
  t.not(closedAt, null, 'the idle connection was closed by the gateway')
  if (closedAt !== null) t.ok(closedAt - answered >= SHORT_MS - 50 && closedAt - answered < SHORT_MS + 5000, `closed ${closedAt - answered} ms after its last answer (idle timeout ${SHORT_MS} ms)`)
})

t.test('HTTP/2: a session silent for the idle timeout gets GOAWAY and closes; a stream open meanwhile still finishes', async (t) => {
  const session = await h2Session(shortGw.url, cert.cert)
  t.teardown(() => { session.destroy() })
  let goawayAt: number | null = null
  session.on('goaway', () => { goawayAt ??= Date.now() })
  const closed = once(session, 'close').then(() => Date.now())
  const quick = await h2Request(shortGw.url, cert.cert, { path: '/api/v1/quick', headers: { authorization: token.bearer } }, session)
  t.equal(quick.status, 200)
  // A stream silent for longer than the timeout: GOAWAY may come while it is open, and it finishes.
  const sent = Date.now()
  const slow = await h2Request(shortGw.url, cert.cert, { path: '/api/v1/slow', headers: { authorization: token.bearer } }, session)
  t.equal(slow.status, 200, 'the slow stream finished')
  t.same(JSON.parse(slow.body.toString('utf8')), { url: '/api/v1/slow' })
  t.ok(Date.now() - sent >= SLOW_MS - 50, 'and took longer than the idle timeout')
  t.ok(await until(() => goawayAt !== null, 10_000, 10), 'GOAWAY')
  if (goawayAt !== null) t.ok(goawayAt - sent >= SHORT_MS - 50, `GOAWAY ${goawayAt - sent} ms after the session's last request (idle timeout ${SHORT_MS} ms)`)
  const closedAt = await Promise.race([closed, sleep(10_000).then(() => null)])
  t.not(closedAt, null, 'and the connection closed')
})

t.test('HTTP/2: a session that never opens a stream gets GOAWAY after the idle timeout, client PINGs or not', async (t) => {
  const opened = Date.now()
  const session = await h2Session(shortGw.url, cert.cert)
  t.teardown(() => { session.destroy() })
  const pings = setInterval(() => { if (!session.destroyed && !session.closed) session.ping(() => {}) }, SHORT_MS / 4)
  t.teardown(() => clearInterval(pings))
  const at = await Promise.race([once(session, 'goaway').then(() => Date.now()), sleep(10_000).then(() => null)])
  t.not(at, null, 'GOAWAY')
  if (at !== null) t.ok(at - opened >= SHORT_MS - 50, `after ${at - opened} ms (idle timeout ${SHORT_MS} ms)`)
})
