// HTTP/2 specifics over TLS: curl --http2 sees what Node's clients see, a second Authorization
// field on h2 is still refused, a refused h2 upload ends its stream (not the connection) with
// no Connection header, and shutdown sends GOAWAY while in-flight streams finish.
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM, type TestGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { makeTestCertificate } from '../helpers/tls.js'
import { h2Request, h2Session } from '../helpers/tls-clients.js'
import { connect as tlsConnect } from 'node:tls'

const run = promisify(execFile)
// Node drops a Connection header set on an h2 response with a process warning: there must be none.
const warnings: string[] = []
process.on('warning', (w) => { warnings.push(`${w.name}: ${w.message}`) })
const cert = makeTestCertificate()
const redis = await sharedRedis()
const up = await new Upstream().start()
const token = await createTestToken(redis.url)
const env = { ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${up.url}`, TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile }
const gateways: TestGateway[] = []
async function gateway (): Promise<TestGateway> {
  const gw = await startGateway(env)
  gateways.push(gw)
  return gw
}
const gw = await gateway()
t.teardown(async () => {
  for (const g of gateways) await g.app.close()
  await up.close()
  await redis.close()
  cert.remove()
})

const curlFeatures = await run('curl', ['--version']).then((r) => r.stdout, () => '')
const curlHasHttp2 = /\bHTTP2\b/.test(curlFeatures)

/** curl --http2 against the gateway: status line, headers (lower-case names) and body. */
async function curl (args: string[]): Promise<{ version: string, status: number, headers: Record<string, string>, body: string }> {
  const { stdout } = await run('curl', ['-sS', '--http2', '--cacert', cert.certFile, '-D', '-', ...args], { maxBuffer: 16 * 1024 * 1024 })
  const end = stdout.indexOf('\r\n\r\n')
  const [statusLine = '', ...lines] = stdout.slice(0, end).split('\r\n')
  const headers: Record<string, string> = {}
  for (const l of lines) {
    const i = l.indexOf(':')
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
  }
  const m = /^HTTP\/(\S+) (\d+)/.exec(statusLine)
  return { version: m?.[1] ?? '', status: Number(m?.[2]), headers, body: stdout.slice(end + 4) }
}

t.test('curl --http2: HTTP/2 answers, the same as Node\'s h2 client', { skip: curlHasHttp2 ? false : 'this curl was built without HTTP/2 (no HTTP2 in `curl --version`): the curl part is skipped' }, async (t) => {
  const ok = await curl(['-H', `Authorization: ${token.bearer}`, '-H', 'X-Request-Id: curl-1', `${gw.url}/api/v1/users/1`])
  t.equal(ok.version, '2', 'curl negotiated HTTP/2')
  t.equal(ok.status, 200)
  t.equal(ok.headers['x-request-id'], 'curl-1')
  t.match(ok.headers.ratelimit, /^"default";r=\d+;t=\d+$/)
  t.equal(ok.headers.connection, undefined)
  t.equal(up.last().headers.via, '2 portcullis')
  t.equal(up.last().headers['x-forwarded-proto'], 'https')
  const denied = await curl([`${gw.url}/api/v1/users/1`])
  t.equal(denied.status, 401)
  t.equal(denied.headers['www-authenticate'], 'Bearer')
  t.equal((JSON.parse(denied.body) as { code: string }).code, 'TOKEN_MISSING')
  const node = await h2Request(gw.url, cert.cert, { path: '/api/v1/users/1' })
  t.equal(node.status, denied.status)
  t.equal(node.body.toString('utf8'), denied.body, 'the same body')

  const before = up.seen.length
  const dup = await curl(['-H', `Authorization: ${token.bearer}`, '-H', `Authorization: ${token.bearer}`, `${gw.url}/api/v1/users/1`])
  t.equal(dup.version, '2')
  t.equal(dup.status, 401, 'a second Authorization field on h2 is refused (rawHeaders keeps both)')
  t.equal((JSON.parse(dup.body) as { code: string }).code, 'TOKEN_INVALID')
  t.equal(up.seen.length, before, 'nothing reached the upstream')
})

t.test('a refused h2 upload: the answer arrives, the stream ends, the session stays usable', async (t) => {
  const session = await h2Session(gw.url, cert.cert)
  t.teardown(() => { session.close() })
  const before = up.started
  const stream = session.request({ ':method': 'POST', ':path': '/api/v1/users/1', 'content-type': 'application/octet-stream' }, { endStream: false })
  // Far more than the stream's flow-control window: without an end from the gateway this would stall.
  const big = randomBytes(4 * 1024 * 1024)
  stream.write(big)
  const [head] = await once(stream, 'response') as [Record<string, string>]
  const chunks: Buffer[] = []
  stream.on('data', (c: Buffer) => chunks.push(c))
  const closed = once(stream, 'close')
  await closed
  t.equal(Number(head[':status']), 401)
  t.equal(head.connection, undefined, 'no Connection header on h2')
  t.equal((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { code: string }).code, 'TOKEN_MISSING')
  t.equal(stream.rstCode, 0, 'the stream was reset with NO_ERROR (RFC 9113 section 8.1)')
  t.equal(up.started, before, 'nothing reached the upstream')
  const again = await h2Request(gw.url, cert.cert, { path: '/api/v1/users/2', headers: { authorization: token.bearer } }, session)
  t.equal(again.status, 200, 'the same session serves the next request')
  t.same(warnings.filter((w) => /connection/i.test(w)), [], 'no Connection header was set on an h2 response')
})

t.test('upstream trailers reach an h2 client as trailers, not as numbered fields', async (t) => {
  const plain = up.handler
  up.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' })
    res.write('part one ')
    res.addTrailers({ 'x-checksum': 'abc123' })
    res.end('part two')
  }
  t.teardown(() => { up.handler = plain })
  const session = await h2Session(gw.url, cert.cert)
  t.teardown(() => { session.close() })
  const stream = session.request({ ':path': '/api/v1/users/trailers', authorization: token.bearer })
  let body = ''
  stream.on('data', (c: Buffer) => { body += c.toString('utf8') })
  const [trailers] = await once(stream, 'trailers') as [Record<string, string>]
  await once(stream, 'close')
  t.equal(body, 'part one part two')
  t.equal(trailers['x-checksum'], 'abc123')
  t.equal(trailers['0'], undefined)
})

t.test('shutdown on h2: GOAWAY, the in-flight stream finishes, idle HTTP/1.1 keep-alive is closed', async (t) => {
  const g = await gateway()
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const plain = up.handler
  up.handler = (req, res, seen) => {
    if (req.url !== '/api/v1/users/slow') { plain(req, res, seen); return }
    held.then(() => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"slow":true}')
    }, () => {})
  }
  t.teardown(() => { up.handler = plain })
  const session = await h2Session(g.url, cert.cert)
  let goaway = false
  session.on('goaway', () => { goaway = true })
  const slow = h2Request(g.url, cert.cert, { path: '/api/v1/users/slow', headers: { authorization: token.bearer } }, session)
  while (up.started === 0 || !up.seen.some((s) => s.url === '/api/v1/users/slow')) await new Promise((resolve) => setTimeout(resolve, 20))
  // An HTTP/1.1 keep-alive connection over TLS, idle by the time the gateway closes.
  const port = Number(new URL(g.url).port)
  const idle = tlsConnect({ host: '127.0.0.1', port, ca: cert.cert, ALPNProtocols: ['http/1.1'] })
  await once(idle, 'secureConnect')
  idle.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
  await once(idle, 'data')
  const idleClosed = once(idle, 'close')

  const started = Date.now()
  g.app.lifecycle.beginDraining()
  const closing = g.app.close()
  await idleClosed
  t.pass('the idle HTTP/1.1 connection was closed at once')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.ok(goaway, 'the h2 session got GOAWAY')
  release()
  const answer = await slow
  t.equal(answer.status, 200, 'the in-flight stream finished')
  t.equal(answer.body.toString('utf8'), '{"slow":true}')
  await closing
  t.ok(Date.now() - started < 5000, 'close completed without waiting for a timeout')
  t.same(warnings.filter((w) => /connection/i.test(w)), [], 'draining set no Connection header on h2')
  session.close()
})
