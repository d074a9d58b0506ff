// TLS_CERT_FILE/TLS_KEY_FILE: the same requests over HTTP/1.1 and HTTP/2 (ALPN on one TLS listener)
// give the same answers: status, the gateway's headers, the JSON body code, streamed bodies.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { sharedRedis, freePort } from '../helpers/redis.js'
import { Upstream, type Handler } from '../helpers/upstream.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { makeTestCertificate } from '../helpers/tls.js'
import { h1Request, h2Request, type TlsAnswer, type TlsRequest } from '../helpers/tls-clients.js'

const DOWNLOAD = randomBytes(3 * 1024 * 1024 + 17)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

// Upstream: /download streams DOWNLOAD in chunks; anything else answers the sha256 of what it got.
const handler: Handler = (req, res, seen) => {
  if (req.url === '/api/v1/users/download') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    let at = 0
    const next = (): void => {
      if (at >= DOWNLOAD.length) { res.end(); return }
      const chunk = DOWNLOAD.subarray(at, at + 64 * 1024)
      at += chunk.length
      if (res.write(chunk)) setImmediate(next)
      else res.once('drain', next)
    }
    next()
    return
  }
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ method: req.method, url: req.url, bytes: seen.bodyBytes, sha256: seen.bodySha256 }))
}

const cert = makeTestCertificate()
const redis = await sharedRedis()
const up = await new Upstream(handler).start()
const deadPort = await freePort()
const gw = await startGateway({
  ...CALM,
  REDIS_URL: redis.url,
  ROUTES: `/api/v1/users=${up.url},/api/v1/dead=http://127.0.0.1:${deadPort}`,
  TLS_CERT_FILE: cert.certFile,
  TLS_KEY_FILE: cert.keyFile
})
const token = await createTestToken(redis.url)
const narrow = await createTestToken(redis.url, { allowed_routes: ['/api/v1/dead/*'] })
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
  cert.remove()
})

type Client = (req: TlsRequest) => Promise<TlsAnswer>
const h1: Client = async (req) => await h1Request(gw.url, cert.cert, req)
const h2: Client = async (req) => await h2Request(gw.url, cert.cert, req)

/** The part of an answer that must not depend on the protocol. */
function comparable (a: TlsAnswer): Record<string, unknown> {
  const h = a.headers
  let code: unknown = null
  if (String(h['content-type']).startsWith('application/json')) code = (JSON.parse(a.body.toString('utf8')) as { code?: unknown }).code ?? null
  return {
    status: a.status,
    code,
    contentType: h['content-type'],
    requestId: h['x-request-id'],
    ratelimitPolicy: h['ratelimit-policy'],
    // `t` may cross a second boundary between the two requests; `r` may not differ.
    ratelimit: typeof h.ratelimit === 'string' ? h.ratelimit.replace(/;t=\d+/, ';t=N') : h.ratelimit,
    retryAfter: h['retry-after'] === undefined ? undefined : 'set',
    wwwAuthenticate: h['www-authenticate'],
    via: h.via
  }
}

t.test('ALPN: HTTP/2 clients get h2, HTTP/1.1 clients get http/1.1', async (t) => {
  const a = await h2({ path: '/healthz' })
  const b = await h1({ path: '/healthz' })
  t.equal(a.alpn, 'h2')
  t.equal(b.alpn, 'http/1.1')
  t.equal(a.status, 200)
  t.equal(b.status, 200)
})

const auth = { authorization: token.bearer }
const CASES: Array<[string, TlsRequest, number, string | null]> = [
  ['200 proxied GET', { path: '/api/v1/users/7?x=1', headers: { ...auth, 'x-request-id': 'parity-200' } }, 200, null],
  ['400 BAD_PATH', { path: '/api/v1/users/a%2Fb', headers: { ...auth, 'x-request-id': 'parity-400' } }, 400, 'BAD_PATH'],
  ['404 ROUTE_NOT_FOUND', { path: '/nowhere/1', headers: { ...auth, 'x-request-id': 'parity-404' } }, 404, 'ROUTE_NOT_FOUND'],
  ['401 TOKEN_MISSING', { path: '/api/v1/users/1', headers: { 'x-request-id': 'parity-401' } }, 401, 'TOKEN_MISSING'],
  ['401 TOKEN_INVALID', { path: '/api/v1/users/1', headers: { authorization: 'Bearer pc_nope', 'x-request-id': 'parity-401b' } }, 401, 'TOKEN_INVALID'],
  ['403 ROUTE_FORBIDDEN', { path: '/api/v1/users/1', headers: { authorization: narrow.bearer, 'x-request-id': 'parity-403' } }, 403, 'ROUTE_FORBIDDEN'],
  ['502 UPSTREAM_ERROR', { path: '/api/v1/dead/1', headers: { ...auth, 'x-request-id': 'parity-502' } }, 502, 'UPSTREAM_ERROR']
]

for (const [name, req, status, code] of CASES) {
  t.test(`${name}: the same over h2 and HTTP/1.1`, async (t) => {
    const a = await h2(req)
    const b = await h1(req)
    t.equal(a.status, status, `h2 status (${a.body.toString('utf8').slice(0, 200)})`)
    t.same(comparable(a), comparable(b), 'same status, gateway headers and body code')
    t.equal(comparable(a).code, code)
    t.equal(a.headers.connection, undefined, 'no Connection header on h2 (RFC 9113 section 8.2.2)')
    if (status === 200) {
      t.match(a.headers.ratelimit, /^"default";r=\d+;t=\d+$/, 'RateLimit on h2')
      t.equal(a.headers.via, '1.1 portcullis', 'Via names the upstream hop (HTTP/1.1)')
    }
  })
}

t.test('429 with RateLimit headers, the same over h2 and HTTP/1.1', async (t) => {
  const answers: TlsAnswer[][] = []
  for (const client of [h2, h1]) {
    const limited = await createTestToken(redis.url, { rate_limit: 1, burst: 1, window_seconds: 3600 })
    const req = { path: '/api/v1/users/1', headers: { authorization: limited.bearer, 'x-request-id': 'parity-429' } }
    answers.push([await client(req), await client(req)])
  }
  const [[h2ok, h2limited], [h1ok, h1limited]] = answers as [[TlsAnswer, TlsAnswer], [TlsAnswer, TlsAnswer]]
  t.equal(h2ok.status, 200)
  t.equal(h2limited.status, 429)
  t.same(comparable(h2ok), comparable(h1ok))
  t.same(comparable(h2limited), comparable(h1limited))
  t.equal(comparable(h2limited).code, 'RATE_LIMITED')
  t.match(h2limited.headers['ratelimit-policy'], /^"default";q=1;w=3600$/)
  t.match(h2limited.headers.ratelimit, /^"default";r=0;t=\d+$/)
  t.ok(Number(h2limited.headers['retry-after']) > 0, 'Retry-After on h2')
})

t.test('streamed upload and download: the same bytes over h2 and HTTP/1.1', async (t) => {
  const chunks = Array.from({ length: 40 }, () => randomBytes(50 * 1024))
  const sent = Buffer.concat(chunks)
  for (const [proto, client] of [['h2', h2], ['h1', h1]] as const) {
    const upload = await client({ method: 'POST', path: '/api/v1/users/upload', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: chunks })
    t.equal(upload.status, 200, `${proto} upload`)
    const body = JSON.parse(upload.body.toString('utf8')) as { bytes: number, sha256: string }
    t.equal(body.bytes, sent.length, `${proto}: the upstream got every byte`)
    t.equal(body.sha256, sha(sent), `${proto}: sha256 of the upload`)
    const download = await client({ path: '/api/v1/users/download', headers: auth })
    t.equal(download.status, 200, `${proto} download`)
    t.equal(download.body.length, DOWNLOAD.length)
    t.equal(sha(download.body), sha(DOWNLOAD), `${proto}: sha256 of the download`)
  }
})

t.test('what the upstream receives from an h2 request: :authority as Host, https, Via 2, no pseudo-headers', async (t) => {
  const before = up.seen.length
  const a = await h2({ path: '/api/v1/users/headers', headers: { ...auth, 'x-request-id': 'h2-forward' } })
  t.equal(a.status, 200)
  const seen = up.seen[before]
  t.ok(seen !== undefined)
  const port = new URL(gw.url).port
  t.equal(seen?.headers['x-forwarded-proto'], 'https')
  t.equal(seen?.headers['x-forwarded-for'], '127.0.0.1', 'the h2 client\'s address')
  t.equal(seen?.headers['x-forwarded-host'], `127.0.0.1:${port}`, ':authority plays the role of Host')
  t.equal(seen?.headers.via, '2 portcullis', 'the version the client spoke')
  t.equal(seen?.headers['x-request-id'], 'h2-forward')
  t.equal(seen?.headers['x-consumer-id'], token.id)
  t.equal(seen?.headers.authorization, undefined)
  t.notOk(seen?.rawHeaders.some((n, i) => i % 2 === 0 && n.startsWith(':')), 'no pseudo-header upstream')
  const h1seen = await h1({ path: '/api/v1/users/headers', headers: auth })
  t.equal(h1seen.status, 200)
  t.equal(up.last().headers['x-forwarded-proto'], 'https')
  t.equal(up.last().headers.via, '1.1 portcullis')
  const lines = gw.logs.records().filter((r) => r.msg === 'request' && r.reqId === 'h2-forward')
  t.equal(lines.length, 1, 'one request log line for the h2 request')
  t.match(lines[0], { method: 'GET', path: '/api/v1/users/headers', status: 200 })
})
