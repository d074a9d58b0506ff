// Hostile request targets sent byte for byte over a raw socket (docs/forwarding.md). Each row says what must
// happen: a 400 BAD_PATH that reaches no upstream, a 404 for a normalised path no route covers,
// Node's own 400 for bytes its HTTP parser refuses, or exactly which path which upstream received.
import t from 'tap'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { rawRequest, type RawResponse } from '../helpers/raw-http.js'

type Expect =
  | { bad: true } // 400 BAD_PATH from the gateway
  | { node400: true } // refused by Node's parser (a bare 400) or by the gateway (BAD_PATH)
  | { notFound: true } // normalised fine, but no route: 404 ROUTE_NOT_FOUND
  | { users: string } | { products: string } // forwarded: the exact path (and query) that upstream got

const BAD = { bad: true } as const
const ROWS: Array<[string, Expect]> = [
  ['/api/v1/users/1', { users: '/api/v1/users/1' }],
  // dot segments, plain and encoded, resolved before routing: the route is chosen on the result
  ['/api/v1/users/../products/1', { products: '/api/v1/products/1' }],
  ['/api/v1/users/%2e%2e/products/1', { products: '/api/v1/products/1' }],
  ['/api/v1/users/%2E%2E/products/1', { products: '/api/v1/products/1' }],
  ['/api/v1/users/.%2e/products/1', { products: '/api/v1/products/1' }],
  ['/api/v1/users/./7/.', { users: '/api/v1/users/7/' }],
  ['/api/v1/users/%2e/7', { users: '/api/v1/users/7' }],
  ['/api/v1/users/7/..', { users: '/api/v1/users/' }],
  ['/api/v1/users/../../../etc/passwd', { notFound: true }],
  ['/api/v1/users/../../../../etc/passwd', BAD], // climbs above the root
  ['/../api/v1/users/1', BAD],
  ['/%2e%2e/api/v1/users/1', BAD],
  // separators in disguise
  ['/api/v1/users/%2F..%2Fproducts/1', BAD],
  ['/api/v1/users%2f7', BAD],
  ['/api/v1/users/..%2f', BAD],
  ['/api/v1/users/%5C..%5Cproducts', BAD],
  ['/api/v1/users/%5c', BAD],
  ['/api/v1/users\\..\\products/1', { node400: true }],
  ['/api/v1/users/7\\', { node400: true }],
  ['//api/v1/users/1', { users: '/api/v1/users/1' }],
  ['/api/v1//users///7', { users: '/api/v1/users/7' }],
  // ; parameters: servlet containers drop them before resolving dot segments
  ['/api/v1/users/..;/products/1', BAD],
  ['/api/v1/users/..;x=1/admin', BAD],
  ['/api/v1/products/..%3B/users', BAD],
  ['/api/v1/users/;x/7', BAD],
  ['/api/v1/users;x/7', { notFound: true }],
  ['/api/v1/users/7;jsessionid=abc', { users: '/api/v1/users/7;jsessionid=abc' }],
  // NUL, controls, invalid and double encoding
  ['/api/v1/users/%00', BAD],
  ['/api/v1/users/1%0d%0aX-Injected:%20yes', BAD],
  ['/api/v1/users/%7f', BAD],
  ['/api/v1/users/%zz', BAD],
  ['/api/v1/users/%', BAD],
  ['/api/v1/users/%u002e%u002e', BAD],
  ['/api/v1/users/%252e%252e/products', BAD],
  ['/api/v1/users/%25%32%65', BAD], // decodes to %2e: double encoding spelt differently
  ['/api/v1/users/100%25', { users: '/api/v1/users/100%25' }],
  // non-ASCII that a backend's NFKC or a lax UTF-8 decoder turns into dots or slashes
  ['/api/v1/users/%EF%BC%8E%EF%BC%8E/products/1', BAD],
  ['/api/v1/users/%ef%bc%8f', BAD],
  ['/api/v1/users/%E2%80%A4%E2%80%A4', BAD],
  ['/api/v1/users/%C0%AE%C0%AE/products', BAD],
  ['/api/v1/users/%e2%82%ac', { users: '/api/v1/users/%E2%82%AC' }],
  ['/api/v1/users/caf\xc3\xa9', { node400: true }], // raw UTF-8 bytes on the wire
  // unreserved characters are decoded, everything else stays (canonically) encoded
  ['/api/v1/users/%7e', { users: '/api/v1/users/~' }],
  ['/api/v1/%75sers/1', { users: '/api/v1/users/1' }],
  ['/api/v1/users/%41b%2Dc', { users: '/api/v1/users/Ab-c' }],
  ['/api/v1/users/a%20b%3f', { users: '/api/v1/users/a%20b%3F' }],
  ['/api/v1/users/a"b', { users: '/api/v1/users/a%22b' }],
  ['/API/v1/users/1', { notFound: true }],
  // names that merely contain dots are names, but reply-from cannot forward "/.." or "../" in a
  // path, so the gateway refuses those up front (they were a 500 after auth and the limiter)
  ['/api/v1/users/a.b/c..', { users: '/api/v1/users/a.b/c..' }],
  ['/api/v1/users/.a/.../x', BAD],
  ['/api/v1/users/..a', BAD],
  ['/api/v1/users/b../c', BAD],
  ['/api/v1/users/%2e%2e%2e', BAD],
  // not a path at all
  ['http://evil.example/api/v1/users/1', BAD],
  ['https://127.0.0.1/api/v1/users/1', BAD],
  ['*', BAD],
  ['api/v1/users/1', { node400: true }],
  ['/api/v1/users/1#frag', BAD],
  // bytes Node's HTTP parser refuses before the gateway sees them
  ['/api/v1/users/a\x01b', { node400: true }],
  ['/api/v1/users/a\x7fb', { node400: true }],
  ['/api/v1/users/a\tb', { node400: true }],
  // the query string is forwarded as sent, after the normalised path
  ['/api/v1/users/./1?next=/../admin&x=%00%2F', { users: '/api/v1/users/1?next=/../admin&x=%00%2F' }]
]

const redis = await sharedRedis()
const users = await new Upstream().start()
const products = await new Upstream().start()
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${users.url},/api/v1/products=${products.url}` })
const token = await createTestToken(redis.url)
t.teardown(async () => {
  await gw.app.close()
  await users.close()
  await products.close()
  await redis.close()
})

function bodyCode (res: RawResponse): string | undefined {
  try {
    return (JSON.parse(res.body.toString('utf8')) as { code?: string }).code
  } catch {
    return undefined
  }
}

t.test(`${ROWS.length} hostile request targets, byte for byte`, async (t) => {
  t.ok(ROWS.length >= 30, 'at least 30 rows')
  for (const [target, expect] of ROWS) {
    const name = JSON.stringify(target)
    const before = users.started + products.started
    const request = Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`, 'latin1')
    const res = await rawRequest(gw.url, request)
    const reached = users.started + products.started - before
    if ('bad' in expect) {
      t.equal(res.status, 400, `${name}: 400`)
      t.equal(bodyCode(res), 'BAD_PATH', `${name}: BAD_PATH`)
      t.equal(reached, 0, `${name}: no upstream saw it`)
    } else if ('node400' in expect) {
      t.equal(res.status, 400, `${name}: 400`)
      const code = bodyCode(res)
      t.ok(code === undefined || code === 'BAD_PATH', `${name}: Node's bare 400 or BAD_PATH (got ${String(code)})`)
      t.equal(reached, 0, `${name}: no upstream saw it`)
    } else if ('notFound' in expect) {
      t.equal(res.status, 404, `${name}: 404`)
      t.equal(bodyCode(res), 'ROUTE_NOT_FOUND', `${name}: ROUTE_NOT_FOUND`)
      t.equal(reached, 0, `${name}: no upstream saw it`)
    } else {
      const [up, path] = 'users' in expect ? [users, expect.users] : [products, expect.products]
      t.equal(res.status, 200, `${name}: forwarded (${res.head.split('\r\n')[0] ?? ''} ${res.body.toString().slice(0, 120)})`)
      t.equal(reached, 1, `${name}: exactly one upstream request`)
      t.equal(up.seen.length > 0 ? up.last().url : null, path, `${name}: the upstream received ${path}`)
    }
  }
})

t.test('the authorised path is the forwarded one: a token for users cannot reach products by dot segments', async (t) => {
  const narrow = await createTestToken(redis.url, { allowed_routes: ['/api/v1/users/*'] })
  const before = products.started
  for (const target of ['/api/v1/users/../products/1', '/api/v1/users/%2e%2e/products/1', '/api/v1/%75sers/../products/1']) {
    const res = await rawRequest(gw.url, `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: ${narrow.bearer}\r\n\r\n`)
    t.equal(res.status, 403, target)
    t.equal(bodyCode(res), 'ROUTE_FORBIDDEN', target)
  }
  t.equal(products.started, before, 'products saw nothing')
})
