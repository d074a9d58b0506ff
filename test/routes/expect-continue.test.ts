// Expect: 100-continue (docs/reference.md): `100 Continue` goes only to a request the gateway has
// admitted (path, route, token, limit, circuit), so a refused client never uploads its body.
// Raw sockets, because the interim answer is what is being tested.
import t from 'tap'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection, json, type RawResponse } from '../helpers/raw-http.js'
import { redisSnapshot } from '../helpers/redis-snapshot.js'

const ADMIN = 'admin-token-0123456789abcdef0123456789'
const redis = await sharedRedis()
const up = await new Upstream().start()
const token = await createTestToken(redis.url)
const scoped = await createTestToken(redis.url, { allowed_routes: ['GET /api/*'] })
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${up.url}`, ADMIN_TOKEN: ADMIN })
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
})

/** A connection that also keeps every byte received, interim answers included. */
async function open (): Promise<{ c: RawConnection, received: () => string }> {
  const c = await RawConnection.open(gw.url)
  let all = ''
  c.socket.on('data', (d: Buffer) => { all += d.toString('latin1') })
  return { c, received: () => all }
}

/** Resolves once a complete head (interim or final) has been received. */
async function firstHead (c: RawConnection, received: () => string): Promise<string> {
  while (!received().includes('\r\n\r\n')) await new Promise((resolve) => c.socket.once('data', resolve))
  return received()
}

function upload (target: string, auth: string | null, extra = ''): string {
  return `POST ${target} HTTP/1.1\r\nHost: x\r\n${auth === null ? '' : `Authorization: ${auth}\r\n`}` +
    `Content-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n${extra}\r\n`
}

t.test('a refused request gets its refusal and never a 100 Continue', async (t) => {
  const rows: Array<[string, string, number, string, boolean]> = [
    ['no token', upload('/api/x', null), 401, 'TOKEN_MISSING', true],
    ['unknown token', upload('/api/x', 'Bearer pc_' + 'x'.repeat(40)), 401, 'TOKEN_INVALID', true],
    ['no route', upload('/nowhere', token.bearer), 404, 'ROUTE_NOT_FOUND', true],
    ['bad path', upload('http://evil/api/x', token.bearer), 400, 'BAD_PATH', true],
    // A forbidden route spends quota by design (one script call decides both): Redis changes.
    ['forbidden route', upload('/api/x', scoped.bearer), 403, 'ROUTE_FORBIDDEN', false],
    ['admin without its token', upload('/admin/tokens', 'Bearer wrong'), 401, 'ADMIN_UNAUTHORIZED', true]
  ]
  for (const [name, data, status, code, noWrites] of rows) {
    const before = await redisSnapshot(redis.url)
    const upBefore = up.started
    const { c, received } = await open()
    c.socket.write(data)
    const res = await c.response()
    t.equal(res.status, status, `${name}: ${status}`)
    t.equal(json(res).code, code, `${name}: ${code}`)
    t.notMatch(received(), /100 Continue/, `${name}: no 100 Continue`)
    t.ok(await c.waitClosed(3000), `${name}: the connection closes (the body was never sent)`)
    t.equal(up.started, upBefore, `${name}: nothing reached the upstream`)
    if (noWrites) t.equal(await redisSnapshot(redis.url), before, `${name}: nothing written to Redis`)
    c.close()
  }
})

t.test('a rate-limited request gets 429 and never a 100 Continue', async (t) => {
  const limited = await createTestToken(redis.url, { rate_limit: 1 })
  let res: RawResponse | null = null
  let received = ''
  for (let i = 0; i < 5 && res?.status !== 429; i++) {
    const o = await open()
    o.c.socket.write(upload('/api/x', limited.bearer))
    if ((await firstHead(o.c, o.received)).startsWith('HTTP/1.1 100 ')) {
      o.c.socket.write('hello')
      t.equal((await o.c.response()).status, 200, 'admitted while there is quota')
    } else {
      res = await o.c.response()
      received = o.received()
    }
    o.c.close()
  }
  t.equal(res?.status, 429)
  t.equal(res === null ? undefined : json(res).code, 'RATE_LIMITED')
  t.notMatch(received, /100 Continue/)
})

t.test('an admitted upload gets 100 Continue, then the proxied answer; the upstream got the body', async (t) => {
  const { c, received } = await open()
  t.teardown(() => c.close())
  c.socket.write(upload('/api/up', token.bearer))
  await firstHead(c, received)
  t.match(received(), /^HTTP\/1\.1 100 Continue\r\n\r\n$/, 'only the interim answer, before the body')
  c.socket.write('hello')
  const res = await c.response()
  t.equal(res.status, 200)
  t.equal(up.last().url, '/api/up')
  t.equal(up.last().bodyBytes, 5)
  t.equal(up.last().headers.expect, undefined)
})

t.test('the admin API sends 100 Continue once its token is checked, then reads the body', async (t) => {
  const body = JSON.stringify({ name: 'expect-test', rate_limit: 10, allowed_routes: ['/api/*'] })
  const { c, received } = await open()
  t.teardown(() => c.close())
  c.socket.write(`POST /admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`)
  await firstHead(c, received)
  t.match(received(), /^HTTP\/1\.1 100 Continue\r\n/)
  c.socket.write(body)
  const res = await c.response()
  t.equal(res.status, 201, res.body.toString())
})

t.test('an expectation other than 100-continue is 417 EXPECTATION_FAILED', async (t) => {
  const { c, received } = await open()
  t.teardown(() => c.close())
  c.socket.write(`POST /api/x HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\nContent-Length: 5\r\nExpect: teapot\r\n\r\n`)
  const res = await c.response()
  t.equal(res.status, 417)
  t.equal(json(res).code, 'EXPECTATION_FAILED')
  t.notMatch(received(), /100 Continue/)
})
