// Header rules of docs/forwarding.md over real sockets. Requests go out through raw `node:net` sockets,
// because client libraries refuse or rewrite Connection lists, hop-by-hop and duplicate headers.
import t from 'tap'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection, rawRequest, header } from '../helpers/raw-http.js'

const redis = await sharedRedis()
const up = await new Upstream().start()
const token = await createTestToken(redis.url)
const gateways: TestGateway[] = []
async function gateway (env: Record<string, string> = {}): Promise<TestGateway> {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${up.url}`, ...env })
  gateways.push(gw)
  return gw
}
const gw = await gateway()
t.teardown(async () => {
  for (const g of gateways) await g.app.close()
  await up.close()
  await redis.close()
})

/** GET /api/v1/users/1 with the token and `lines` as extra header lines, exactly as written. */
function get (lines: string[], target = '/api/v1/users/1'): string {
  return `GET ${target} HTTP/1.1\r\nHost: gw.example\r\nAuthorization: ${token.bearer}\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/

t.test('hop-by-hop request headers and every header Connection names stay at the gateway', async (t) => {
  const res = await rawRequest(gw.url, get([
    'Connection: keep-alive, X-Custom-A, x-custom-b',
    'Connection: X-Custom-C',
    'X-Custom-A: 1', 'X-Custom-B: 2', 'X-Custom-C: 3',
    'Keep-Alive: timeout=5, max=10',
    'TE: trailers, deflate',
    'Trailer: X-Checksum',
    'Upgrade: h2c',
    'Proxy-Authorization: Basic dXNlcjpwYXNz',
    'Proxy-Connection: keep-alive',
    'X-Kept: yes'
  ]))
  t.equal(res.status, 200, res.head)
  const seen = up.last().headers
  for (const name of ['x-custom-a', 'x-custom-b', 'x-custom-c', 'keep-alive', 'te', 'trailer', 'upgrade',
    'proxy-authorization', 'proxy-connection', 'authorization']) {
    t.equal(seen[name], undefined, `${name} is not forwarded`)
  }
  // The only Connection upstream is the gateway's own client's (undici's keep-alive), none of the client's tokens.
  t.not(seen.connection ?? '', /custom/i)
  t.equal(seen['x-kept'], 'yes', 'an end-to-end header is forwarded')
})

t.test('naming the gateway\'s own headers in Connection cannot remove them', async (t) => {
  const res = await rawRequest(gw.url, get([
    'Connection: X-Request-Id, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Consumer-Id',
    'X-Request-Id: client-id-1'
  ]))
  t.equal(res.status, 200, res.head)
  const seen = up.last().headers
  t.match(seen['x-request-id'], REQUEST_ID, 'a request id is still sent')
  t.equal(seen['x-request-id'], header(res, 'x-request-id'), 'and it is the one echoed')
  t.equal(seen['x-forwarded-for'], '127.0.0.1')
  t.equal(seen['x-forwarded-proto'], 'http')
  t.equal(seen['x-forwarded-host'], 'gw.example')
  t.equal(seen['x-consumer-id'], token.id)
})

const SPOOFED = [
  'X-Forwarded-For: 6.6.6.6', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: evil.example',
  'Forwarded: for=6.6.6.6;proto=https;host=evil.example', 'X-Real-IP: 6.6.6.6'
]

t.test('with TRUST_PROXY unset, client-sent forwarding headers are replaced or removed', async (t) => {
  const res = await rawRequest(gw.url, get([...SPOOFED, 'X-Forwarded-For: 7.7.7.7']))
  t.equal(res.status, 200, res.head)
  const seen = up.last()
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1')
  t.equal(seen.headers['x-forwarded-proto'], 'http')
  t.equal(seen.headers['x-forwarded-host'], 'gw.example')
  t.equal(seen.headers.forwarded, undefined)
  t.equal(seen.headers['x-real-ip'], undefined)
  const rawNames = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
  t.equal(rawNames.filter((n) => n === 'x-forwarded-for').length, 1, 'exactly one X-Forwarded-For on the wire')
})

t.test('with TRUST_PROXY=true, X-Forwarded-For is appended to and the proxy\'s claims are kept', async (t) => {
  const trusting = await gateway({ TRUST_PROXY: 'true' })
  const res = await rawRequest(trusting.url, get(SPOOFED))
  t.equal(res.status, 200, res.head)
  const seen = up.last().headers
  t.equal(seen['x-forwarded-for'], '6.6.6.6, 127.0.0.1')
  t.equal(seen['x-forwarded-proto'], 'https')
  t.equal(seen['x-forwarded-host'], 'evil.example')
  t.equal(seen.forwarded, 'for=6.6.6.6;proto=https;host=evil.example')
  t.equal(seen['x-real-ip'], '6.6.6.6')
  // Without any forwarding header, the gateway's own view is sent.
  const plain = await rawRequest(trusting.url, get([]))
  t.equal(plain.status, 200)
  t.equal(up.last().headers['x-forwarded-for'], '127.0.0.1')
  t.equal(up.last().headers['x-forwarded-proto'], 'http')
})

t.test('with TRUST_PROXY listing other addresses, a client outside the list is not trusted', async (t) => {
  const listed = await gateway({ TRUST_PROXY: '10.0.0.0/8,192.168.1.1' })
  const res = await rawRequest(listed.url, get(SPOOFED))
  t.equal(res.status, 200, res.head)
  const seen = up.last().headers
  t.equal(seen['x-forwarded-for'], '127.0.0.1')
  t.equal(seen['x-forwarded-proto'], 'http')
  t.equal(seen['x-forwarded-host'], 'gw.example')
  t.equal(seen.forwarded, undefined)
  t.equal(seen['x-real-ip'], undefined)
  // ...and a listed peer (loopback here) is.
  const loopback = await gateway({ TRUST_PROXY: '127.0.0.1' })
  t.equal((await rawRequest(loopback.url, get(SPOOFED))).status, 200)
  t.equal(up.last().headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1')
})

t.test('a valid X-Request-Id is sent upstream and echoed', async (t) => {
  for (const id of ['abc', 'A-b_c.9', 'x'.repeat(128), '0']) {
    const res = await rawRequest(gw.url, get([`X-Request-Id: ${id}`]))
    t.equal(res.status, 200)
    t.equal(header(res, 'x-request-id'), id, 'echoed')
    t.equal(up.last().headers['x-request-id'], id, 'sent upstream')
  }
})

t.test('an invalid X-Request-Id is replaced by a generated one, echoed and sent upstream', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['129 characters', ['X-Request-Id: ' + 'x'.repeat(129)]],
    ['a slash', ['X-Request-Id: abc/def']],
    ['a space inside', ['X-Request-Id: abc def']],
    ['a colon', ['X-Request-Id: a:b']],
    ['non-ASCII', ['X-Request-Id: caf\u00e9']],
    ['empty', ['X-Request-Id: ']],
    ['two headers', ['X-Request-Id: one', 'X-Request-Id: two']]
  ]
  const generated = new Set<string>()
  for (const [name, lines] of cases) {
    const res = await rawRequest(gw.url, Buffer.from(get(lines), 'latin1'))
    t.equal(res.status, 200, name)
    const echoed = header(res, 'x-request-id') ?? ''
    t.match(echoed, REQUEST_ID, `${name}: a valid id is echoed`)
    t.notOk(['one', 'two', 'one, two', 'abc', 'def'].includes(echoed), `${name}: not the client's`)
    t.equal(up.last().headers['x-request-id'], echoed, `${name}: the same id went upstream`)
    generated.add(echoed)
  }
  t.equal(generated.size, cases.length, 'each request got its own id')
})

t.test('an upstream cannot replace the echoed X-Request-Id', async (t) => {
  const liar = await new Upstream((_req, res) => { res.writeHead(200, { 'x-request-id': 'upstream-made' }); res.end('ok') }).start()
  const g = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${liar.url}` })
  t.teardown(async () => { await g.app.close(); await liar.close() })
  const res = await rawRequest(g.url, get(['X-Request-Id: mine']))
  t.same(res.headers['x-request-id'], ['mine'])
})

t.test('Authorization and client-sent X-Consumer-* never reach the upstream', async (t) => {
  const res = await rawRequest(gw.url, get(['X-Consumer-Id: tok_admin', 'X-Consumer-Name: root', 'x-consumer-groups: admins']))
  t.equal(res.status, 200)
  const seen = up.last()
  t.equal(seen.headers.authorization, undefined)
  t.equal(seen.headers['x-consumer-id'], token.id, 'X-Consumer-Id is the token id, set by the gateway')
  t.equal(seen.headers['x-consumer-name'], undefined)
  t.equal(seen.headers['x-consumer-groups'], undefined)
  t.notOk(seen.rawHeaders.some((v) => v.includes(token.key)), 'the key appears nowhere upstream')
})

t.test('an Expect: 100-continue upload is answered by the gateway and its body forwarded', async (t) => {
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  c.socket.write(`POST /api/v1/users/1 HTTP/1.1\r\nHost: gw.example\r\nAuthorization: ${token.bearer}\r\n` +
    'Content-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
  const continued = await new Promise<string>((resolve) => c.socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))))
  t.match(continued, /^HTTP\/1\.1 100 Continue\r\n/)
  c.socket.write('hello')
  const res = await c.response()
  t.equal(res.status, 200, res.head)
  t.equal(up.last().bodyBytes, 5)
  t.equal(up.last().headers.expect, undefined, 'the expectation was met hop by hop')
})

t.test('hop-by-hop headers of the upstream response are not passed to the client', async (t) => {
  const hoppy = await new Upstream((_req, res) => {
    res.writeHead(200, [
      'Connection', 'foo, bar', 'Foo', 'x', 'Bar', 'y', 'Keep-Alive', 'timeout=999', 'Upgrade', 'h2c',
      'Proxy-Connection', 'keep-alive', 'Proxy-Authenticate', 'Basic', 'Trailer', 'X-Sum', 'X-End-To-End', 'kept'
    ])
    res.end('body')
  }).start()
  const g = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${hoppy.url}` })
  t.teardown(async () => { await g.app.close(); await hoppy.close() })
  const res = await rawRequest(g.url, get([]))
  t.equal(res.status, 200, res.head)
  t.equal(res.body.toString(), 'body')
  for (const name of ['foo', 'bar', 'upgrade', 'proxy-connection', 'proxy-authenticate']) {
    t.equal(res.headers[name], undefined, `${name} is not passed on`)
  }
  // Not hop-by-hop in RFC 9110: announced again on a chunked response, whose trailers are forwarded.
  t.same(res.headers.trailer, ['X-Sum'], 'Trailer is passed on with the chunked body')
  t.same(res.headers.connection, ['keep-alive'], 'Connection is the gateway\'s own')
  t.not(header(res, 'keep-alive'), 'timeout=999', 'Keep-Alive, if any, is the gateway\'s own')
  t.same(res.headers['x-end-to-end'], ['kept'])
})
