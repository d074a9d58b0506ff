// The proxy streams any body with any Content-Type (docs/forwarding.md): Fastify's media-type check
// (415 for `text`, `;;;`, an empty value) never answers for it, and the upstream receives the body
// byte for byte with the Content-Type exactly as the client sent it.
import t from 'tap'
import { createHash } from 'node:crypto'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection } from '../helpers/raw-http.js'

const redis = await sharedRedis()
const up = await new Upstream().start()
const token = await createTestToken(redis.url)
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${up.url}` })
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
})

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

t.test('any Content-Type, valid or not, is proxied with its body untouched', async (t) => {
  const body = Buffer.from('{"not": valid json at all \u00e9\u0000\u00ff', 'latin1')
  const rows: Array<string | null> = ['text', ';;;', '', 'application/json', 'text/plain; charset=', 'a/b/c', 'multipart/form-data; boundary=x',
    'application/octet-stream', 'Application/JSON ; Charset="utf-8"', '\u00e9/\u00e9', null]
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  for (const type of rows) {
    const label = type === null ? 'no Content-Type' : JSON.stringify(type)
    const head = `POST /api/upload HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n` +
      (type === null ? '' : `Content-Type: ${type}\r\n`) + `Content-Length: ${body.length}\r\n\r\n`
    const before = up.seen.length
    const res = await c.request(Buffer.concat([Buffer.from(head, 'latin1'), body]))
    t.equal(res.status, 200, `${label}: proxied (${res.body.toString().slice(0, 100)})`)
    t.equal(up.seen.length - before, 1, `${label}: one upstream request`)
    const seen = up.last()
    t.equal(seen.bodySha256, sha(body), `${label}: body byte for byte`)
    const sent = seen.rawHeaders.flatMap((v, i) => i % 2 === 0 && v.toLowerCase() === 'content-type' ? [seen.rawHeaders[i + 1]] : [])
    t.same(sent, type === null ? [] : [type.trim()], `${label}: the original Content-Type`)
  }
})

t.test('a chunked upload with an unparseable Content-Type streams through', async (t) => {
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  const res = await c.request(`PUT /api/chunked HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\nContent-Type: text\r\n` +
    'Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n')
  t.equal(res.status, 200, res.head)
  t.equal(up.last().bodySha256, sha('abcde'))
  t.equal(up.last().headers['content-type'], 'text')
})
