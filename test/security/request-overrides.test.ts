// Headers with which a client could change what was authorised (docs/forwarding.md): untrusted
// X-Forwarded-* of any kind, and method or URL overrides, which frameworks honour. Raw sockets,
// because client libraries rewrite or refuse some of these spellings.
import t from 'tap'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { rawRequest } from '../helpers/raw-http.js'

const redis = await sharedRedis()
const up = await new Upstream().start()
// Scoped like the attacker: may only POST under /api/x/.
const token = await createTestToken(redis.url, { allowed_routes: ['POST /api/x/*'] })
const gateways: TestGateway[] = []
async function gateway (env: Record<string, string> = {}): Promise<TestGateway> {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${up.url}`, ...env })
  gateways.push(gw)
  return gw
}
t.teardown(async () => {
  for (const g of gateways) await g.app.close()
  await up.close()
  await redis.close()
})

function post (lines: string[]): string {
  return `POST /api/x/1 HTTP/1.1\r\nHost: gw.example\r\nAuthorization: ${token.bearer}\r\nContent-Length: 2\r\n` +
    `${lines.map((l) => l + '\r\n').join('')}\r\nhi`
}

const OVERRIDES = [
  'X-HTTP-Method-Override: DELETE', 'X-HTTP-Method: DELETE', 'X-Method-Override: DELETE',
  'X-Original-URL: /admin/drop', 'X-Rewrite-URL: /admin/drop',
  'X_HTTP_Method_Override: DELETE', 'x_original_url: /admin/drop', 'X_Rewrite_URL: /admin/drop',
  'X_HTTP_METHOD: DELETE', 'x_method_override: DELETE'
]
const FORWARDED_OTHERS = [
  'X-Forwarded-Port: 8443', 'X-Forwarded-Prefix: /evil', 'X-Forwarded-Scheme: https', 'X-Forwarded-Ssl: on',
  'X-Forwarded-Server: evil.example', 'X-Forwarded-Uri: /admin', 'X-Forwarded-Anything: x'
]

/** Header names the upstream received, lower-cased, in wire order (duplicates kept). */
function names (raw: string[]): string[] {
  return raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
}

for (const trust of ['false', 'true']) {
  t.test(`method and URL overrides never reach the upstream (TRUST_PROXY=${trust})`, async (t) => {
    const gw = await gateway({ TRUST_PROXY: trust })
    const res = await rawRequest(gw.url, post(OVERRIDES))
    t.equal(res.status, 200, res.head)
    const seen = up.last()
    t.equal(seen.method, 'POST')
    t.equal(seen.url, '/api/x/1')
    const got = names(seen.rawHeaders)
    for (const n of ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url']) {
      t.notOk(got.includes(n), `${n} is removed`)
      t.notOk(got.includes(n.replace(/-/g, '_')), `${n.replace(/-/g, '_')} is removed`)
    }
    t.notOk(seen.rawHeaders.some((v) => /DELETE|\/admin/.test(v)), 'no override value reaches the upstream')
  })
}

t.test('with TRUST_PROXY off, every client X-Forwarded-* is removed and the gateway sets only its own three', async (t) => {
  const gw = await gateway()
  const res = await rawRequest(gw.url, post([...FORWARDED_OTHERS, 'X-Forwarded-For: 6.6.6.6', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: evil.example']))
  t.equal(res.status, 200, res.head)
  const seen = up.last()
  const forwarded = names(seen.rawHeaders).filter((n) => n.startsWith('x-forwarded-')).sort()
  t.same(forwarded, ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto'])
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1')
  t.equal(seen.headers['x-forwarded-proto'], 'http')
  t.equal(seen.headers['x-forwarded-host'], 'gw.example')
})

t.test('from a trusted proxy, its X-Forwarded-* claims are kept', async (t) => {
  const gw = await gateway({ TRUST_PROXY: '127.0.0.1' })
  const res = await rawRequest(gw.url, post(FORWARDED_OTHERS))
  t.equal(res.status, 200, res.head)
  const seen = up.last().headers
  t.equal(seen['x-forwarded-port'], '8443')
  t.equal(seen['x-forwarded-prefix'], '/evil')
  t.equal(seen['x-forwarded-ssl'], 'on')
  t.equal(seen['x-forwarded-for'], '127.0.0.1')
})
