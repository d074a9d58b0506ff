// Bearer authentication and route permission (docs/tokens.md, docs/reference.md) over raw sockets: every refusal with its
// status, code and challenge, the order of checks, and that the upstream never sees a credential.
import t, { type Test } from 'tap'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { CALM, startGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection, rawRequest, header, json, type RawResponse } from '../helpers/raw-http.js'
import { credentialLeaks } from '../helpers/leaks.js'
import { Redis } from 'ioredis'
import { TokenStore } from '../../src/tokens/store.js'
import { digestApiKey, tokenLimiterKey } from '../../src/tokens/keys.js'

const redis = await sharedRedis()
const up = await new Upstream().start()
const good = await createTestToken(redis.url, { allowed_routes: ['/api/v1/users/*'] })
const other = await createTestToken(redis.url, { allowed_routes: ['/*'] })
const readOnly = await createTestToken(redis.url, { allowed_routes: ['GET,HEAD /api/v1/users/*'] })
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${up.url},/api/v1/products=${up.url}` })
const KEYS = [good.key, other.key, readOnly.key]
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
})

/** One request on a fresh connection, header lines exactly as given. */
async function send (lines: string[], target = '/api/v1/users/1', method = 'GET'): Promise<RawResponse> {
  const head = `${method} ${target} HTTP/1.1\r\nHost: gw.test\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`
  return await rawRequest(gw.url, Buffer.from(head, 'latin1'), { head: method === 'HEAD' })
}

/** Asserts a gateway-made refusal: status, JSON code, and for 401 the Bearer challenge. */
function refused (t: Test, res: RawResponse, status: number, code: string, label: string): void {
  t.equal(res.status, status, `${label}: status (${res.head.split('\r\n')[0]})`)
  const body = json(res)
  t.equal(body.code, code, `${label}: code`)
  t.equal(body.statusCode, status, `${label}: statusCode in the body`)
  t.type(body.message, 'string', `${label}: a message`)
  if (status === 401) t.match(header(res, 'www-authenticate'), /^Bearer(?: |$)/, `${label}: WWW-Authenticate: Bearer`)
  else t.equal(res.headers['www-authenticate'], undefined, `${label}: no challenge`)
  for (const k of KEYS) t.notOk(res.body.toString('latin1').includes(k), `${label}: the answer does not echo a key`)
}

t.test('every malformed, unknown or missing credential is a 401 with its code and a Bearer challenge', async (t) => {
  const cases: Array<[string, string[], string]> = [
    ['no Authorization header', [], 'TOKEN_MISSING'],
    ['a credential under another header name', [`X-Authorization: ${good.bearer}`, `Proxy-Authorization: ${good.bearer}`], 'TOKEN_MISSING'],
    ['Basic scheme', ['Authorization: Basic dXNlcjpwYXNz'], 'TOKEN_INVALID'],
    ['Basic scheme carrying a valid key', [`Authorization: Basic ${good.key}`], 'TOKEN_INVALID'],
    ['another scheme', [`Authorization: Token ${good.key}`], 'TOKEN_INVALID'],
    ['a bare key, no scheme', [`Authorization: ${good.key}`], 'TOKEN_INVALID'],
    ['Bearer with no token', ['Authorization: Bearer'], 'TOKEN_INVALID'],
    ['Bearer and spaces only', ['Authorization: Bearer    '], 'TOKEN_INVALID'],
    ['an empty Authorization', ['Authorization: '], 'TOKEN_INVALID'],
    ['no space after Bearer', [`Authorization: Bearer${good.key}`], 'TOKEN_INVALID'],
    ['a tab after Bearer', [`Authorization: Bearer\t${good.key}`], 'TOKEN_INVALID'],
    ['a token with a space', [`Authorization: Bearer ${good.key} extra`], 'TOKEN_INVALID'],
    ['the key twice, space-separated', [`Authorization: Bearer ${good.key} ${good.key}`], 'TOKEN_INVALID'],
    ['comma-joined credentials', [`Authorization: Bearer ${good.key}, Bearer ${other.key}`], 'TOKEN_INVALID'],
    ['a trailing comma', [`Authorization: Bearer ${good.key},`], 'TOKEN_INVALID'],
    ['a quoted token', [`Authorization: Bearer "${good.key}"`], 'TOKEN_INVALID'],
    ['two Authorization headers, both valid', [`Authorization: ${good.bearer}`, `Authorization: ${other.bearer}`], 'TOKEN_INVALID'],
    ['two Authorization headers, the same key twice', [`Authorization: ${good.bearer}`, `Authorization: ${good.bearer}`], 'TOKEN_INVALID'],
    ['two Authorization headers, a bad one first', ['Authorization: Basic eDp5', `authorization: ${good.bearer}`], 'TOKEN_INVALID'],
    ['two Authorization headers, a bad one second', [`Authorization: ${good.bearer}`, 'AUTHORIZATION: Basic eDp5'], 'TOKEN_INVALID'],
    ['an unknown token', ['Authorization: Bearer pc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'], 'TOKEN_INVALID'],
    ['the key with one character more', [`Authorization: Bearer ${good.key}x`], 'TOKEN_INVALID'],
    ['the key with one character less', [`Authorization: Bearer ${good.key.slice(0, -1)}`], 'TOKEN_INVALID'],
    ['the key in upper case (keys are case-sensitive)', [`Authorization: Bearer ${good.key.toUpperCase()}`], 'TOKEN_INVALID'],
    ['a 600-character token', [`Authorization: Bearer ${'a'.repeat(600)}`], 'TOKEN_INVALID'],
    ['non-ASCII in the token', [`Authorization: Bearer ${good.key}\u00e9`], 'TOKEN_INVALID']
  ]
  for (const [label, lines, code] of cases) {
    const before = up.started
    const res = await send(lines)
    refused(t, res, 401, code, label)
    t.equal(up.started, before, `${label}: the upstream saw nothing`)
  }
})

t.test('the scheme is case-insensitive and one or more spaces may follow it', async (t) => {
  for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
    const res = await send([`Authorization: ${scheme} ${good.key}`])
    t.equal(res.status, 200, `${scheme}: ${res.head.split('\r\n')[0]}`)
    t.equal(up.last().headers['x-consumer-id'], good.id)
  }
  const spaced = await send([`Authorization: Bearer    ${good.key}`])
  t.equal(spaced.status, 200, 'RFC 6750: "Bearer" 1*SP b64token')
  // A header name in any case is still the one Authorization header.
  t.equal((await send([`aUtHoRiZaTiOn: ${good.bearer}`])).status, 200)
})

t.test('a token in the query string is refused and never forwarded', async (t) => {
  const encoded = [...good.key].map((c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')).join('')
  const cases: Array<[string, string, string[]]> = [
    ['access_token with a valid header too', `?access_token=${good.key}`, [`Authorization: ${good.bearer}`]],
    ['access_token alone', `?access_token=${good.key}`, []],
    ['access_token, any case', `?a=1&ACCESS_TOKEN=${good.key}`, [`Authorization: ${good.bearer}`]],
    ['access_token percent-encoded name', '?access%5Ftoken=zzz', [`Authorization: ${good.bearer}`]],
    ['access_token empty', '?access_token=', [`Authorization: ${good.bearer}`]],
    ['the key under another name', `?q=${good.key}`, [`Authorization: ${good.bearer}`]],
    ['the key inside a value', `?q=abc${good.key}def&x=1`, [`Authorization: ${good.bearer}`]],
    ['the key as a parameter name', `?${good.key}`, [`Authorization: ${good.bearer}`]],
    ['the key fully percent-encoded', `?q=${encoded}`, [`Authorization: ${good.bearer}`]]
  ]
  for (const [label, query, lines] of cases) {
    const before = up.started
    const res = await send(lines, '/api/v1/users/1' + query)
    refused(t, res, 401, lines.length === 0 ? 'TOKEN_MISSING' : 'TOKEN_INVALID', label)
    t.equal(up.started, before, `${label}: not forwarded`)
  }
  // An ordinary query string still passes, byte for byte.
  const ok = await send([`Authorization: ${good.bearer}`], '/api/v1/users/1?q=token&page=2')
  t.equal(ok.status, 200)
  t.equal(up.last().url, '/api/v1/users/1?q=token&page=2')
})

t.test('an imported key with / + = in the query is refused however the rest of the query is encoded', async (t) => {
  // The reported bypass: the whole query was decoded at once, and one stray `%` anywhere made the
  // check fall back to the raw text, where the encoded key is not found.
  const key = 'slash/plus+key0123456=='
  const r = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => r.disconnect())
  const [id] = await new TokenStore(r, 'portcullis:').importRecords({ api_key: key, rate_limit: 1000, allowed_routes: ['/api/v1/users/*'] })
  KEYS.push(key)
  const limiterKey = tokenLimiterKey('portcullis:', digestApiKey(key))
  const enc = encodeURIComponent(key)
  const auth = [`Authorization: Bearer ${key}`]
  const cases: Array<[string, string]> = [
    ['the key encoded, then a stray %', `?q=${enc}&discount=50%`],
    ['a stray % first', `?discount=50%&q=${enc}`],
    ['an invalid escape next to the key', `?q=%zz${enc}%2`],
    ['only / encoded', '?q=slash%2Fplus+key0123456=='],
    ['the key encoded twice', `?q=${encodeURIComponent(enc)}`],
    ['the key after a ; separator', `?a=1;q=${enc}`],
    ['the key after empty pairs', `?&&q=${enc}&&x=%`],
    ['the key without its padding', '?q=slash%2Fplus%2Bkey0123456&d=50%'],
    ['access%5Ftoken and a stray %', '?d=50%&access%5Ftoken=x'],
    ['access_token after ;', '?a=1;ACCESS_TOKEN=x'],
    ['access.token (PHP)', '?access.token=x']
  ]
  for (const [label, query] of cases) {
    const before = up.started
    refused(t, await send(auth, '/api/v1/users/1' + query), 401, 'TOKEN_INVALID', label)
    t.equal(up.started, before, `${label}: the upstream received nothing`)
  }
  t.equal(await r.exists(limiterKey), 0, 'refused before the gate: no limiter state written for the key')
  // The same key is valid: with an ordinary query (stray % included) it is served, and the
  // upstream gets that query byte for byte.
  const ok = await send(auth, '/api/v1/users/1?discount=50%&q=x')
  t.equal(ok.status, 200, ok.head)
  t.equal(up.last().url, '/api/v1/users/1?discount=50%&q=x')
  t.equal(up.last().headers['x-consumer-id'], id)
})

t.test('403 ROUTE_FORBIDDEN outside allowed_routes and outside a method list', async (t) => {
  const g = [`Authorization: ${good.bearer}`]
  const ro = [`Authorization: ${readOnly.bearer}`]
  for (const [label, lines, target, method] of [
    ['another route', g, '/api/v1/products', 'GET'],
    ['below another route', g, '/api/v1/products/7', 'GET'],
    ['a dot segment into another route', g, '/api/v1/users/../products/7', 'GET'],
    ['POST with GET,HEAD', ro, '/api/v1/users/7', 'POST'],
    ['DELETE with GET,HEAD', ro, '/api/v1/users', 'DELETE'],
    ['PATCH with GET,HEAD', ro, '/api/v1/users/7/orders', 'PATCH']
  ] as Array<[string, string[], string, string]>) {
    const before = up.started
    refused(t, await send(lines, target, method), 403, 'ROUTE_FORBIDDEN', label)
    t.equal(up.started, before, `${label}: the upstream saw nothing`)
  }
  for (const [lines, target, method] of [
    [g, '/api/v1/users', 'GET'], [g, '/api/v1/users/7/orders', 'DELETE'], [g, '/api/v1/users/', 'POST'],
    [ro, '/api/v1/users/7', 'GET'], [ro, '/api/v1/users', 'HEAD']
  ] as Array<[string[], string, string]>) {
    const res = await send(lines, target, method)
    t.equal(res.status, 200, `${method} ${target}: allowed`)
    t.equal(up.last().method, method)
  }
})

t.test('order: 400 before 404 before 401 before 403 before 429', async (t) => {
  const before = up.started
  refused(t, await send([], '/api/v1/users/%2e%2e%2f'), 400, 'BAD_PATH', 'a bad path, no token')
  refused(t, await send([], '/api/v1/users/..;/products'), 400, 'BAD_PATH', 'a ..; path, no token')
  refused(t, await send(['Authorization: Basic eDp5'], '/nowhere/..%2fapi'), 400, 'BAD_PATH', 'a bad path, bad token')
  refused(t, await send([], '/api/v2/users'), 404, 'ROUTE_NOT_FOUND', 'an unrouted path, no token')
  refused(t, await send([], '/api/v1/usersX'), 404, 'ROUTE_NOT_FOUND', 'a route prefix is whole segments')
  refused(t, await send(['Authorization: Bearer nope-nope-nope'], '/api/v2/users'), 404, 'ROUTE_NOT_FOUND', 'an unrouted path, bad token')
  refused(t, await send(['Authorization: Basic eDp5', 'Authorization: x'], '/internal'), 404, 'ROUTE_NOT_FOUND', 'an unrouted path, two headers')
  refused(t, await send(['Authorization: Bearer nope-nope-nope'], '/api/v1/products/1'), 401, 'TOKEN_INVALID', 'a forbidden route, bad token')
  refused(t, await send([], '/api/v1/products/1'), 401, 'TOKEN_MISSING', 'a forbidden route, no token')
  t.equal(up.started, before, 'the upstream saw none of them')

  // A token over its limit still gets 403 for a route it may not call: permission comes first.
  const one = await createTestToken(redis.url, { rate_limit: 1, window_seconds: 3600, allowed_routes: ['/api/v1/users/*'] })
  KEYS.push(one.key)
  t.equal((await send([`Authorization: ${one.bearer}`])).status, 200)
  const limited = await send([`Authorization: ${one.bearer}`])
  refused(t, limited, 429, 'RATE_LIMITED', 'over the limit')
  t.match(header(limited, 'retry-after'), /^[1-9][0-9]*$/)
  refused(t, await send([`Authorization: ${one.bearer}`], '/api/v1/products'), 403, 'ROUTE_FORBIDDEN', 'forbidden while limited')
})

t.test('400, 404 and 401 never touch the rate limiter', async (t) => {
  const one = await createTestToken(redis.url, { rate_limit: 1, window_seconds: 3600, allowed_routes: ['/api/v1/users/*'] })
  KEYS.push(one.key)
  const auth = `Authorization: ${one.bearer}`
  for (let i = 0; i < 3; i++) {
    t.equal((await send([auth], '/api/v1/users/%2F')).status, 400)
    t.equal((await send([auth], '/api/v9')).status, 404)
    t.equal((await send([auth, auth])).status, 401)
    t.equal((await send([auth], `/api/v1/users?access_token=${one.key}`)).status, 401)
  }
  const res = await send([auth])
  t.equal(res.status, 200, 'the one request of the window is still available')
  t.match(header(res, 'ratelimit'), /^"default";r=0;t=\d+$/)
  t.equal((await send([auth])).status, 429, 'and it was the only one')
})

t.test('the upstream sees X-Consumer-Id = the token id and never a credential', async (t) => {
  const res = await send([
    `Authorization: ${good.bearer}`, 'X-Consumer-Id: tok_admin', 'X-Consumer-Foo: bar', 'x-consumer-id: tok_root',
    'Connection: X-Consumer-Id, Authorization', 'X-Api-Note: see header'
  ])
  t.equal(res.status, 200, res.head)
  const seen = up.last()
  t.equal(seen.headers['x-consumer-id'], good.id)
  t.equal(seen.headers['x-consumer-foo'], undefined)
  const consumerIds = seen.rawHeaders.filter((_, i) => i % 2 === 0).filter((n) => n.toLowerCase() === 'x-consumer-id')
  t.equal(consumerIds.length, 1, 'exactly one X-Consumer-Id on the wire')
})

t.test('each request on a connection is authenticated on its own (keep-alive and pipelining)', async (t) => {
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  const req = (lines: string[]): string => `GET /api/v1/users/1 HTTP/1.1\r\nHost: gw.test\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`
  // Three requests in one write: a good token, none, another token.
  c.socket.write(req([`Authorization: ${good.bearer}`]) + req([]) + req([`Authorization: ${other.bearer}`]))
  const first = await c.response()
  t.equal(first.status, 200)
  const second = await c.response()
  refused(t, second, 401, 'TOKEN_MISSING', 'the second pipelined request, without a token')
  const third = await c.response()
  t.equal(third.status, 200)
  const ids = up.seen.slice(-2).map((s) => s.headers['x-consumer-id'])
  t.same(ids, [good.id, other.id], 'each forwarded request carries its own consumer')
})

// CGI/WSGI/Rack backends read X_Consumer_Id as HTTP_X_CONSUMER_ID, the same as X-Consumer-Id.
t.test('underscore spellings of X-Consumer-* and X-Forwarded-* are not forwarded either', async (t) => {
  const res = await send([`Authorization: ${good.bearer}`, 'X_Consumer_Id: tok_admin', 'x_consumer-groups: admins', 'X_Forwarded_For: 10.9.9.9'])
  t.equal(res.status, 200)
  const names = up.last().rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replace(/_/g, '-'))
  t.equal(names.filter((n) => n === 'x-consumer-id').length, 1, 'one X-Consumer-Id in any spelling')
  t.notOk(names.includes('x-consumer-groups'))
  t.equal(names.filter((n) => n === 'x-forwarded-for').length, 1, 'one X-Forwarded-For in any spelling')
  t.notOk(JSON.stringify(up.last().rawHeaders).includes('10.9.9.9'), 'the spoofed address is gone')
})

t.test('no recorded upstream request carries an Authorization header or a key', async (t) => {
  t.ok(up.seen.length >= 15, `the upstream recorded ${up.seen.length} requests`)
  t.same(credentialLeaks(up.seen, KEYS), [])
  for (const s of up.seen) t.match(s.headers['x-consumer-id'], /^tok_[a-z2-7]{12}$/, `${s.method} ${s.url}: X-Consumer-Id set`)
})
