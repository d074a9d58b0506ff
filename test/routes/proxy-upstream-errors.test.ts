// Upstream faults for real (docs/reference.md, docs/forwarding.md): refused, silent, reset, garbage, bad TLS; no retries.
import t from 'tap'
import { Agent, request } from 'undici'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '../helpers/redis.js'
import { Upstream, type Handler } from '../helpers/upstream.js'
import { startGateway, type TestGateway, CALM } from '../helpers/gateway.js'
import { redisWithToken } from '../helpers/tokens.js'
import { RawConnection } from '../helpers/raw-http.js'

const { redis, token, onEnd } = await redisWithToken()

/** A gateway whose one route `/api` goes to `upstream`, with a route timeout when given. */
async function gatewayTo (upstream: string, timeoutMs?: number): Promise<TestGateway> {
  const routes = JSON.stringify([{ prefix: '/api', upstream, ...(timeoutMs === undefined ? {} : { timeoutMs }) }])
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: routes })
  onEnd(async () => { await gw.app.close() })
  return gw
}

async function upstream (handler: Handler): Promise<Upstream> {
  const up = await new Upstream(handler).start()
  onEnd(async () => { await up.close() })
  return up
}

interface Answer { status: number, body: { statusCode?: number, code?: string, error?: string, message?: string }, ms: number }

async function call (gw: TestGateway, method = 'GET', body?: string): Promise<Answer> {
  const started = performance.now()
  const res = await request(gw.url + '/api/thing', {
    method: method as 'GET',
    headers: { authorization: token.bearer, ...(body === undefined ? {} : { 'content-type': 'text/plain' }) },
    ...(body === undefined ? {} : { body })
  })
  const text = await res.body.text()
  return { status: res.statusCode, body: JSON.parse(text) as Answer['body'], ms: performance.now() - started }
}

/** The `upstreamFailure` of the gateway's request log lines. */
function failures (gw: TestGateway): unknown[] {
  return gw.logs.records().filter((r) => r.msg === 'request').map((r) => r.upstreamFailure)
}

t.test('a refused connection is a 502 UPSTREAM_ERROR', async (t) => {
  const gw = await gatewayTo(`http://127.0.0.1:${await freePort()}`)
  const a = await call(gw)
  t.equal(a.status, 502)
  t.same(a.body, { statusCode: 502, code: 'UPSTREAM_ERROR', error: 'Bad Gateway', message: 'The upstream refused the connection' })
  t.same(failures(gw), ['refused'])
})

t.test('an upstream that accepts and never answers is a 504 after the route timeout', async (t) => {
  const up = await upstream(() => {})
  const gw = await gatewayTo(up.url, 300)
  const a = await call(gw)
  t.equal(a.status, 504)
  t.same(a.body, { statusCode: 504, code: 'UPSTREAM_TIMEOUT', error: 'Gateway Timeout', message: 'The upstream did not answer within 300 ms' })
  t.ok(a.ms >= 250, `not before the timeout (${Math.round(a.ms)} ms)`)
  t.ok(a.ms < 5000, `well within 5 s (${Math.round(a.ms)} ms)`)
  t.equal(up.started, 1, 'one attempt')
  t.same(failures(gw), ['timeout'])
})

t.test('the timeout counts to the first response byte: a slow upload is not cut', async (t) => {
  const up = await upstream((_req, res, seen) => { res.end(String(seen.bodyBytes)) })
  const gw = await gatewayTo(up.url, 300)
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  c.socket.write(`POST /api/slow HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\nTransfer-Encoding: chunked\r\n\r\n`)
  for (let i = 0; i < 8; i++) { c.socket.write('1\r\nx\r\n'); await sleep(150) } // 1.2 s in all
  c.socket.write('0\r\n\r\n')
  const res = await c.response()
  t.equal(res.status, 200)
  t.equal(res.body.toString(), '8')
})

t.test('an upstream that resets the connection is a 502, and a POST is sent exactly once', async (t) => {
  const up = await upstream((req) => { req.socket.resetAndDestroy() })
  const gw = await gatewayTo(up.url)
  const post = await call(gw, 'POST', 'do-not-repeat')
  t.equal(post.status, 502)
  t.equal(post.body.code, 'UPSTREAM_ERROR')
  t.equal(post.body.message, 'The upstream reset the connection')
  const get = await call(gw, 'GET')
  t.equal(get.status, 502)
  await sleep(300) // a retry would arrive within this
  t.equal(up.started, 2, 'one POST and one GET reached the upstream, nothing was retried')
  t.same(up.seen.map((s) => s.method), ['POST', 'GET'])
})

t.test('an upstream that answers garbage is a 502', async (t) => {
  const up = await upstream((_req, res) => { res.socket?.end('SSH-2.0-OpenSSH_9.6\r\n\r\nnot http at all\r\n') })
  const gw = await gatewayTo(up.url)
  const a = await call(gw)
  t.equal(a.status, 502)
  t.same(a.body, { statusCode: 502, code: 'UPSTREAM_ERROR', error: 'Bad Gateway', message: 'The upstream answered with something that is not valid HTTP' })
  t.same(failures(gw), ['protocol'])
})

t.test('a 503 from the upstream is passed through once, never retried', async (t) => {
  const up = await upstream((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' })
    res.end('{"upstream":"busy"}')
  })
  const gw = await gatewayTo(up.url)
  const started = performance.now()
  const res = await request(gw.url + '/api/thing', { headers: { authorization: token.bearer } })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '0', 'the upstream\'s own headers')
  t.same(await res.body.json(), { upstream: 'busy' }, 'the upstream\'s own body')
  await sleep(300)
  t.equal(up.started, 1, 'exactly one upstream request')
  t.ok(performance.now() - started < 3000)
})

t.test('an upstream body cut short is not passed off as complete', async (t) => {
  const up = await upstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }) // chunked
    res.write('part one\n')
    setTimeout(() => res.socket?.destroy(), 100)
  })
  const gw = await gatewayTo(up.url)
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  await t.rejects(c.request(`GET /api/cut HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`),
    /connection closed before a complete response/, 'the client sees the connection drop, not a final chunk')
})

t.test('an https upstream with a self-signed certificate is refused: TLS is verified', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-tls-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
    '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')])
  let requests = 0
  const server = createHttpsServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) },
    (_req, res) => { requests++; res.end('secret') })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`

  // The server itself works: a client that skips verification gets an answer.
  const lax = new Agent({ connect: { rejectUnauthorized: false } })
  const insecure = await request(origin + '/api/x', { dispatcher: lax })
  t.equal(await insecure.body.text(), 'secret')
  await lax.close()
  t.equal(requests, 1)

  const gw = await gatewayTo(origin)
  const a = await call(gw)
  t.equal(a.status, 502)
  t.same(a.body, { statusCode: 502, code: 'UPSTREAM_ERROR', error: 'Bad Gateway', message: 'The upstream TLS certificate could not be verified' })
  t.equal(requests, 1, 'no request went over the unverified connection')
  t.same(failures(gw), ['tls'])
})
