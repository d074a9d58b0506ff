// Answers the gateway makes itself where Node or Fastify refused first (docs/reference.md): parser
// refusals, CONNECT, Fastify's own 4xx. Each one carries the JSON body with a gateway code and an
// X-Request-Id, is counted and logged once, and nothing reaches the upstream or Redis.
import t, { type Test } from 'tap'
import { request } from 'undici'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection, header, json, type RawResponse } from '../helpers/raw-http.js'
import { redisSnapshot } from '../helpers/redis-snapshot.js'
import { valueOf } from '../helpers/prometheus.js'

const ADMIN = 'admin-token-0123456789abcdef0123456789'
const redis = await sharedRedis()
const up = await new Upstream().start()
const token = await createTestToken(redis.url)
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${up.url}`, ADMIN_TOKEN: ADMIN })
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
})

const AUTH = `Authorization: ${token.bearer}\r\n`
const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/

/** Sends `data` on a fresh connection; returns every response until the server closes it. */
async function exchange (data: string): Promise<{ responses: RawResponse[], closed: boolean }> {
  const c = await RawConnection.open(gw.url)
  try {
    c.socket.write(data)
    const responses: RawResponse[] = []
    for (;;) {
      try {
        responses.push(await c.response())
      } catch {
        break // closed: no further response
      }
    }
    return { responses, closed: await c.waitClosed(3000) }
  } finally {
    c.close()
  }
}

/** The single response to `data`, checked to be the gateway's JSON answer `status`/`code` followed by a close. */
async function refused (t: Test, data: string, status: number, code: string): Promise<RawResponse> {
  const upBefore = up.started
  const before = await redisSnapshot(redis.url)
  const { responses, closed } = await exchange(data)
  t.equal(responses.length, 1, 'one answer')
  const res = responses[0] as RawResponse
  t.equal(res.status, status, res.head)
  t.equal(json(res).code, code)
  t.equal(json(res).statusCode, status)
  t.match(header(res, 'content-type'), /^application\/json/)
  t.match(header(res, 'x-request-id'), REQUEST_ID, 'an X-Request-Id')
  t.ok(closed, 'the connection is closed')
  t.equal(up.started, upBefore, 'nothing reached the upstream')
  t.equal(await redisSnapshot(redis.url), before, 'nothing was written to Redis')
  return res
}

t.test('requests Node\'s parser refuses get the gateway\'s JSON answer, logged once without their bytes', async (t) => {
  const rows: Array<[string, string, number, string]> = [
    ['not HTTP', `GARBAGE ${token.key}\r\n\r\n`, 400, 'BAD_REQUEST'],
    ['bad Content-Length', `POST /api/x HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: abc\r\n\r\nhi`, 400, 'BAD_REQUEST'],
    ['two Content-Lengths', `POST /api/x HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 2\r\nContent-Length: 3\r\n\r\nhi`, 400, 'BAD_REQUEST'],
    ['Content-Length and chunked', `POST /api/x HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'BAD_REQUEST'],
    ['space before colon', `GET /api/x HTTP/1.1\r\nHost: x\r\n${AUTH}X-Bad : 1\r\n\r\n`, 400, 'BAD_REQUEST'],
    ['headers over 16 KiB', `GET /api/x HTTP/1.1\r\nHost: x\r\n${AUTH}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    // Node counts the request line in the same limit: an over-long target is a 431, not a 414.
    ['target over 16 KiB', `GET /api/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`, 431, 'HEADERS_TOO_LARGE']
  ]
  for (const [name, data, status, code] of rows) {
    await t.test(name, async (t) => {
      const logsBefore = gw.logs.lines.length
      const res = await refused(t, data, status, code)
      const lines = gw.logs.lines.slice(logsBefore)
      const requestLines = gw.logs.records().slice(logsBefore).filter((r) => r.msg === 'request')
      t.equal(requestLines.length, 1, 'one request line')
      t.equal(requestLines[0]?.status, status)
      t.equal(requestLines[0]?.code, code)
      t.equal(requestLines[0]?.remoteAddress, '127.0.0.1', 'the line names the client address')
      t.equal(requestLines[0]?.reqId, header(res, 'x-request-id'), 'the line carries the answer\'s request id')
      t.notOk(lines.some((l) => l.includes(token.key)), 'the token in the refused bytes is not logged')
      t.notOk(lines.some((l) => l.includes('aaaaaaaa')), 'nor the bytes themselves')
    })
  }
})

t.test('a valid request pipelined ahead of unparseable bytes gets its own answer first, then the 400', async (t) => {
  const upBefore = up.seen.length
  const { responses, closed } = await exchange(
    `POST /api/ok HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhiGARBAGE\r\n\r\n`)
  t.equal(responses.length, 2, 'two answers')
  t.equal(responses[0]?.status, 200, 'first the proxied answer')
  t.same(JSON.parse(responses[0]?.body.toString() ?? ''), { method: 'POST', url: '/api/ok' })
  t.equal(responses[1]?.status, 400, 'then the refusal')
  t.equal(responses[1] === undefined ? undefined : json(responses[1]).code, 'BAD_REQUEST')
  t.ok(closed, 'then the connection closes')
  t.equal(up.seen.length - upBefore, 1, 'the upstream saw exactly one request')
  t.equal(up.last().bodyBytes, 2)
})

t.test('two pipelined requests ahead of the bad bytes are both answered, in order', async (t) => {
  const upBefore = up.seen.length
  const one = `GET /api/one HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`
  const two = `GET /api/two HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`
  const { responses, closed } = await exchange(one + two + '\x01\x02 nonsense\r\n\r\n')
  t.same(responses.map((r) => r.status), [200, 200, 400])
  t.same(responses.slice(0, 2).map((r) => (JSON.parse(r.body.toString()) as { url: string }).url), ['/api/one', '/api/two'])
  t.ok(closed)
  t.equal(up.seen.length - upBefore, 2)
})

t.test('CONNECT is answered 405 METHOD_NOT_ALLOWED with Allow, then closed', async (t) => {
  const res = await refused(t, `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n${AUTH}X-Request-Id: conn-1\r\n\r\n`,
    405, 'METHOD_NOT_ALLOWED')
  t.equal(header(res, 'x-request-id'), 'conn-1', 'a valid client request id is echoed')
  const allow = (header(res, 'allow') ?? '').split(', ')
  t.ok(allow.includes('GET') && allow.includes('POST'), 'Allow lists the methods served')
  t.notOk(allow.includes('CONNECT'))
  const line = gw.logs.records().filter((r) => r.msg === 'request' && r.reqId === 'conn-1')
  t.equal(line.length, 1, 'one request line')
  t.equal(line[0]?.method, 'CONNECT')
  t.equal(line[0]?.remoteAddress, '127.0.0.1', 'the line names the client address')
})

t.test('Fastify\'s own refusals on the admin API carry gateway codes', async (t) => {
  const admin = (type: string, body: string): string =>
    `POST /admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: ${type}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  const rows: Array<[string, string, string, number, string]> = [
    ['invalid JSON', 'application/json', '{"name": "x", ', 400, 'BAD_REQUEST'],
    ['a media type it does not parse', 'application/xml', '<token/>', 415, 'UNSUPPORTED_MEDIA_TYPE']
  ]
  for (const [name, type, body, status, code] of rows) {
    const before = await redisSnapshot(redis.url)
    const c = await RawConnection.open(gw.url)
    const res = await c.request(admin(type, body))
    c.close()
    t.equal(res.status, status, `${name}: ${status}`)
    t.equal(json(res).code, code, `${name}: ${code}`)
    t.notOk(JSON.stringify(json(res)).includes('"name"'), `${name}: the body is not quoted back`)
    t.match(header(res, 'x-request-id'), REQUEST_ID)
    t.equal(await redisSnapshot(redis.url), before, `${name}: nothing written`)
  }
  // Over the admin body limit: refused before it is read.
  const c = await RawConnection.open(gw.url)
  c.socket.write(`POST /admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{`)
  const big = await c.response()
  c.close()
  t.equal(big.status, 413)
  t.equal(json(big).code, 'PAYLOAD_TOO_LARGE')
})

t.test('no FST_ code in any metric label; parser refusals are counted by gateway code', async (t) => {
  const text = await (await request(`${gw.url}/metrics`)).body.text()
  t.notOk(text.includes('FST_'), 'no Fastify code in /metrics')
  t.ok(valueOf(text, 'portcullis_gateway_errors_total', { code: 'BAD_REQUEST', route: 'unmatched' }) >= 6, 'the 400s are counted')
  t.ok(valueOf(text, 'portcullis_gateway_errors_total', { code: 'HEADERS_TOO_LARGE' }) >= 2, 'the 431s are counted')
  t.ok(valueOf(text, 'portcullis_gateway_errors_total', { code: 'METHOD_NOT_ALLOWED' }) >= 1, 'the CONNECT is counted')
  t.equal(valueOf(text, 'portcullis_http_requests_total', { route: 'unmatched', status_class: '4xx' }) >= 9, true)
})
