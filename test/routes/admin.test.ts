// The admin API (docs/reference.md) on a real gateway and Redis: disabled without ADMIN_TOKEN, refused with
// a wrong one, create/list/show/revoke with the CLI's semantics, invalid bodies refused with a
// message naming the problem, and 503 (never 500) while Redis is down.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { RedisServer, scanKeys, sharedRedis } from '../helpers/redis.js'
import { TokenStore } from '../../src/tokens/store.js'
import { Upstream } from '../helpers/upstream.js'
import { CALM, startGateway, type TestGateway } from '../helpers/gateway.js'
import { rawRequest, header, json as rawJson } from '../helpers/raw-http.js'

const ADMIN = 'adm-' + randomBytes(16).toString('hex')
const redis = await sharedRedis()
const up = await new Upstream().start()
const ROUTES = `/api/v1/users=${up.url}`
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ADMIN_TOKEN: ADMIN, ROUTES })
const gateways: TestGateway[] = [gw]
t.teardown(async () => {
  for (const g of gateways) await g.app.close()
  await up.close()
  await redis.close()
})

interface Answer { status: number, body: Record<string, unknown> & Array<Record<string, unknown>>, text: string, headers: Record<string, string | string[] | undefined> }

async function call (g: TestGateway, method: 'GET' | 'POST' | 'DELETE' | 'HEAD', path: string, opts: { auth?: string | null, body?: unknown, raw?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (opts.auth !== null) headers.authorization = opts.auth ?? `Bearer ${ADMIN}`
  let body: string | undefined
  if (opts.raw !== undefined || opts.body !== undefined) {
    headers['content-type'] = 'application/json'
    body = opts.raw ?? JSON.stringify(opts.body)
  }
  const res = await request(g.url + path, { method, headers, body })
  const text = await res.body.text()
  return { status: res.statusCode, body: text === '' ? {} as never : JSON.parse(text), text, headers: res.headers }
}

/**
 * Every token record and the id index, as text. Limiter keys are left out: earlier tests' expire
 * by themselves while a test runs, and no admin call writes one.
 */
async function tokenState (r: Redis): Promise<string[]> {
  const keys = (await scanKeys(r)).filter((k) => !k.endsWith(':gcra')).sort()
  return await Promise.all(keys.map(async (k) => `${k} ${await r.type(k) === 'hash' ? JSON.stringify(await r.hgetall(k)) : String(await r.dump(k))}`))
}

/** A gateway-made error answer with this status and code. */
function isError (t: Test, a: Answer, status: number, code: string, label: string): void {
  t.equal(a.status, status, `${label}: ${a.text}`)
  t.equal(a.body.code, code, `${label}: code`)
  t.equal(a.body.statusCode, status, `${label}: statusCode`)
  t.type(a.body.message, 'string', `${label}: message`)
}

const ENDPOINTS: Array<['GET' | 'POST' | 'DELETE', string, unknown]> = [
  ['POST', '/admin/tokens', { rate_limit: 5, allowed_routes: ['/api/v1/users/*'] }],
  ['GET', '/admin/tokens', undefined],
  ['GET', '/admin/tokens/tok_aaaaaaaaaaaa', undefined],
  ['DELETE', '/admin/tokens/tok_aaaaaaaaaaaa', undefined]
]

t.test('without ADMIN_TOKEN every admin path answers 404', async (t) => {
  const off = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES })
  gateways.push(off)
  for (const [method, path, body] of ENDPOINTS) {
    for (const auth of [null, `Bearer ${ADMIN}`, 'Bearer anything-at-all-here']) {
      const a = await call(off, method, path, { auth, body })
      t.equal(a.status, 404, `${method} ${path} (${auth ?? 'no auth'})`)
      t.equal(a.headers['www-authenticate'], undefined, 'no challenge that would reveal an admin API')
    }
  }
  const list = await call(off, 'GET', '/admin/tokens')
  t.equal(list.body.code, 'NOT_FOUND')
})

t.test('a missing, wrong or malformed admin credential is a 401 with a Bearer challenge', async (t) => {
  const apiKey = (await call(gw, 'POST', '/admin/tokens', { body: { rate_limit: 5, allowed_routes: ['/*'] } })).body.api_key as string
  const wrong: Array<[string, string | null]> = [
    ['no Authorization', null],
    ['another token', 'Bearer adm-00000000000000000000000000000000'],
    ['a prefix of the admin token', `Bearer ${ADMIN.slice(0, -1)}`],
    ['the first half of the admin token', `Bearer ${ADMIN.slice(0, ADMIN.length / 2)}`],
    ['the admin token and more', `Bearer ${ADMIN}0`],
    ['the admin token in upper case', `Bearer ${ADMIN.toUpperCase()}`],
    ['the admin token as Basic', `Basic ${ADMIN}`],
    ['the admin token without a scheme', ADMIN],
    ['two tokens', `Bearer ${ADMIN} ${ADMIN}`],
    ['a proxy API key', `Bearer ${apiKey}`]
  ]
  for (const [method, path, body] of ENDPOINTS) {
    for (const [label, auth] of wrong) {
      const a = await call(gw, method, path, { auth, body })
      isError(t, a, 401, 'ADMIN_UNAUTHORIZED', `${method} ${path}, ${label}`)
      t.match(a.headers['www-authenticate'], /^Bearer/)
    }
  }
  // A second Authorization header is refused here as on the proxy (raw socket: clients merge them).
  const twice = await rawRequest(gw.url, `GET /admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`)
  t.equal(twice.status, 401)
  t.equal(rawJson(twice).code, 'ADMIN_UNAUTHORIZED')
  const query = await rawRequest(gw.url, `GET /admin/tokens?access_token=${ADMIN} HTTP/1.1\r\nHost: x\r\n\r\n`)
  t.equal(query.status, 401, 'the admin token is not accepted in the query string')
  t.match(header(query, 'www-authenticate'), /^Bearer/)
  // And the scheme is case-insensitive here too.
  t.equal((await call(gw, 'GET', '/admin/tokens', { auth: `bEaReR ${ADMIN}` })).status, 200)
})

t.test('create shows the key once; list and show never include it; the token works at once', async (t) => {
  const created = await call(gw, 'POST', '/admin/tokens', {
    body: { name: 'ci bot', rate_limit: 100, burst: 20, window_seconds: 30, expires_at: '2031-06-30T12:00:00+02:00', allowed_routes: ['/api/v1/users/*', 'GET,HEAD /api/v1/users/*'] }
  })
  t.equal(created.status, 201, created.text)
  const key = created.body.api_key as string
  const id = created.body.id as string
  t.match(created.body, {
    api_key: /^pc_[A-Za-z0-9_-]{32}$/,
    id: /^tok_[a-z2-7]{12}$/,
    name: 'ci bot',
    rate_limit: 100,
    burst: 20,
    window_seconds: 30,
    expires_at: '2031-06-30T10:00:00Z',
    allowed_routes: ['/api/v1/users/*', 'GET,HEAD /api/v1/users/*']
  })
  t.match(created.body.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/)

  const shown = await call(gw, 'GET', `/admin/tokens/${id}`)
  t.equal(shown.status, 200)
  const { api_key: _shownOnce, ...publicRecord } = created.body
  t.same(shown.body, publicRecord, 'show is the record without the key')
  t.notOk('api_key' in shown.body)
  t.notOk(shown.text.includes(key), 'the key appears nowhere in show')

  const list = await call(gw, 'GET', '/admin/tokens')
  t.equal(list.status, 200)
  t.ok(Array.isArray(list.body))
  t.ok(list.body.some((r) => r.id === id), 'listed')
  t.ok(list.body.every((r) => !('api_key' in r)), 'no record in the list has api_key')
  t.notOk(list.text.includes(key), 'the key appears nowhere in the list')
  const bare = key.slice(3)
  t.notOk(list.text.includes(bare) || shown.text.includes(bare), 'not even without its prefix')

  const proxied = await request(gw.url + '/api/v1/users/1', { headers: { authorization: `Bearer ${key}` } })
  t.equal(proxied.statusCode, 200, 'the new token is usable on the next request')
  await proxied.body.dump()
  t.equal(up.last().headers['x-consumer-id'], id)
})

t.test('invalid bodies are 400 with a message that names the problem (no coercion, no silent removal)', async (t) => {
  const base = { rate_limit: 5, allowed_routes: ['/api/v1/users/*'] }
  const cases: Array<[string, unknown, RegExp]> = [
    ['a pattern without a leading slash', { ...base, allowed_routes: ['api/v1/users/*'] }, /allowed_routes\[0\].*api\/v1\/users\/\*/],
    ['a pattern with a partial wildcard', { ...base, allowed_routes: ['/api/v1/users*'] }, /allowed_routes\[0\]/],
    ['a pattern with an unknown method', { ...base, allowed_routes: ['GTE /api/v1/users/*'] }, /GTE/],
    ['a pattern with a dot segment', { ...base, allowed_routes: ['/api/v1/users/../admin'] }, /allowed_routes\[0\]/],
    ['rate_limit 0', { ...base, rate_limit: 0 }, /rate_limit/],
    ['rate_limit negative', { ...base, rate_limit: -1 }, /rate_limit/],
    ['rate_limit fractional', { ...base, rate_limit: 1.5 }, /rate_limit/],
    ['rate_limit as a string', { ...base, rate_limit: '5' }, /rate_limit/],
    ['burst as a string', { ...base, burst: '5' }, /burst/],
    ['allowed_routes as a string', { ...base, allowed_routes: '/api/v1/users/*' }, /allowed_routes/],
    ['no allowed_routes', { rate_limit: 5 }, /allowed_routes/],
    ['empty allowed_routes', { ...base, allowed_routes: [] }, /allowed_routes/],
    ['no rate_limit', { allowed_routes: ['/a'] }, /rate_limit/],
    ['an unknown field', { ...base, foo: 1 }, /foo/],
    ['an api_key (keys are generated, never chosen here)', { ...base, api_key: 'chosen-by-client-0000' }, /api_key/],
    ['an expiry in the past', { ...base, expires_at: '2001-01-01T00:00:00Z' }, /expires_at.*past/],
    ['an expiry that is not a date', { ...base, expires_at: 'tomorrow' }, /expires_at/],
    ['an array instead of an object', [base], /object/],
    ['null', null, /object/]
  ]
  const before = (await call(gw, 'GET', '/admin/tokens')).body.length
  for (const [label, body, message] of cases) {
    const a = await call(gw, 'POST', '/admin/tokens', { raw: JSON.stringify(body) })
    t.equal(a.status, 400, `${label}: ${a.text}`)
    t.equal(a.body.code, 'BAD_REQUEST', `${label}: code`)
    t.match(a.body.message, message, `${label}: the message names the problem`)
    t.notOk(a.text.includes('chosen-by-client'), `${label}: no api_key echoed`)
  }
  const several = await call(gw, 'POST', '/admin/tokens', { body: { rate_limit: '5', allowed_routes: ['nope'], foo: 1 } })
  t.equal(several.status, 400)
  for (const part of [/foo: unknown field/, /rate_limit:/, /allowed_routes\[0\]:/]) t.match(several.body.message, part, 'every problem is listed, as the CLI does')
  for (const raw of ['', '{"rate_limit":', 'not json']) {
    const a = await call(gw, 'POST', '/admin/tokens', { raw })
    t.equal(a.status, 400, `body ${JSON.stringify(raw)}: ${a.text}`)
  }
  t.equal((await call(gw, 'GET', '/admin/tokens')).body.length, before, 'nothing was created')
})

t.test('unknown ids are 404 TOKEN_NOT_FOUND; DELETE revokes at once, then 404', async (t) => {
  isError(t, await call(gw, 'GET', '/admin/tokens/tok_unknownunkno'), 404, 'TOKEN_NOT_FOUND', 'show unknown')
  isError(t, await call(gw, 'DELETE', '/admin/tokens/tok_unknownunkno'), 404, 'TOKEN_NOT_FOUND', 'delete unknown')
  isError(t, await call(gw, 'GET', '/admin/tokens/not.an.id'), 404, 'TOKEN_NOT_FOUND', 'an id of the wrong shape is not found, like any other unknown id')

  const created = await call(gw, 'POST', '/admin/tokens', { body: { rate_limit: 100, allowed_routes: ['/api/v1/users/*'] } })
  const key = created.body.api_key as string
  const id = created.body.id as string
  const ok = await request(gw.url + '/api/v1/users/1', { headers: { authorization: `Bearer ${key}` } })
  t.equal(ok.statusCode, 200)
  await ok.body.dump()

  const del = await call(gw, 'DELETE', `/admin/tokens/${id}`)
  t.equal(del.status, 204)
  t.equal(del.text, '', 'no body')
  const after = await rawRequest(gw.url, `GET /api/v1/users/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`)
  t.equal(after.status, 401, 'the very next proxied request is refused')
  t.equal(rawJson(after).code, 'TOKEN_INVALID')
  isError(t, await call(gw, 'DELETE', `/admin/tokens/${id}`), 404, 'TOKEN_NOT_FOUND', 'delete again')
  isError(t, await call(gw, 'GET', `/admin/tokens/${id}`), 404, 'TOKEN_NOT_FOUND', 'show after delete')
  t.notOk((await call(gw, 'GET', '/admin/tokens')).body.some((r) => r.id === id), 'gone from the list')
  // The API key is not an id: DELETE by key does not revoke anything (the CLI's revoke accepts keys, the URL does not).
  const other = await call(gw, 'POST', '/admin/tokens', { body: { rate_limit: 100, allowed_routes: ['/*'] } })
  const byKey = await call(gw, 'DELETE', `/admin/tokens/${other.body.api_key as string}`)
  t.equal(byKey.status, 404, 'a key in the URL is not a revocation (it would end up in access logs)')
  t.equal((await call(gw, 'GET', `/admin/tokens/${other.body.id as string}`)).status, 200, 'the token is still there')
})

/** `cmdstat_<name>` → calls, from INFO commandstats. */
async function commandCalls (r: Redis): Promise<Map<string, number>> {
  const calls = new Map<string, number>()
  for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1] as string, Number(m[2]))
  return calls
}

t.test('an id of another shape is 404 TOKEN_NOT_FOUND, not echoed, with no Redis command at all', async (t) => {
  const r = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => r.disconnect())
  // An index entry under an old-style id: were the text looked up, it would be found.
  const created = await call(gw, 'POST', '/admin/tokens', { body: { rate_limit: 5, allowed_routes: ['/*'] } })
  const digest = await r.hget('portcullis:tokens', created.body.id as string)
  await r.hset('portcullis:tokens', 'seed-a', digest as string)
  const notIds = ['seed-a', 'alice', 'tok_short', 'tok_AAAAAAAAAAAA', 'tok_aaaaaaaaaaa1', 'tok_aaaaaaaaaaaaa', 'x'.repeat(64), 'not.an.id']
  const before = await commandCalls(r)
  for (const method of ['GET', 'DELETE'] as const) {
    for (const id of notIds) {
      const a = await call(gw, method, `/admin/tokens/${id}`)
      isError(t, a, 404, 'TOKEN_NOT_FOUND', `${method} ${id}`)
      t.notOk(a.text.includes(id), `${method} ${id}: not echoed`)
    }
  }
  const after = await commandCalls(r)
  // `info` is this test's own probe, `ping` the under-pressure health check that runs every second
  // whatever the requests do: neither is a lookup of the text.
  const ran = [...after].filter(([name, n]) => name !== 'info' && name !== 'ping' && n !== (before.get(name) ?? 0))
  t.same(ran, [], 'Redis ran no command for text that is not an id')
  t.equal((await call(gw, 'GET', `/admin/tokens/${created.body.id as string}`)).status, 200, 'a real id is still looked up')
  t.equal(await r.hdel('portcullis:tokens', 'seed-a'), 1, 'the old-style entry was not touched')
})

t.test('an API key in the URL is never echoed in the 404 nor written to the log', async (t) => {
  const r = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => r.disconnect())
  const imported = 'slash/plus+key0123456=='
  const [importedId] = await new TokenStore(r, 'portcullis:').importRecords({ api_key: imported, rate_limit: 5, allowed_routes: ['/*'] })
  const created = await call(gw, 'POST', '/admin/tokens', { body: { rate_limit: 5, allowed_routes: ['/*'] } })
  const generated = created.body.api_key as string
  const generatedId = created.body.id as string
  const secrets = [imported, encodeURIComponent(imported), generated, generated.slice(3)]
  const targets: Array<[string, string]> = [
    ['a generated key (it has the shape of an imported id)', generated],
    ['an imported key with / + =, as sent', imported],
    ['an imported key with / + =, percent-encoded', encodeURIComponent(imported)],
    ['an imported key with only / encoded', 'slash%2Fplus+key0123456=='],
    ['a generated key after a trailing slash', `${generated}/`],
    ['a generated key with a query', `${generated}?x=1`]
  ]
  const before = await tokenState(r)
  const logFrom = gw.logs.lines.length
  let n = 0
  for (const method of ['GET', 'DELETE'] as const) {
    for (const [label, tail] of targets) {
      const reqId = `adm-key-${++n}`
      const res = await request(`${gw.url}/admin/tokens/${tail}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'x-request-id': reqId } })
      const text = await res.body.text()
      t.equal(res.statusCode, 404, `${method} ${label}: ${text}`)
      t.equal(JSON.parse(text).code, 'TOKEN_NOT_FOUND', `${method} ${label}: code`)
      for (const s of secrets) t.notOk(text.includes(s), `${method} ${label}: the 404 does not echo the key`)
      const line = gw.logs.records().find((rec) => rec.reqId === reqId && rec.msg === 'request')
      t.match(line, { status: 404, method }, `${method} ${label}: one request line`)
      t.match(line?.path, /^\/admin\/tokens\/(:id|\*)$/, `${method} ${label}: the route pattern is logged, not the path`)
    }
  }
  const lines = gw.logs.lines.slice(logFrom)
  t.ok(lines.length >= n, `${lines.length} log lines written`)
  for (const [i, line] of lines.entries()) {
    for (const s of secrets) t.notOk(line.includes(s), `log line ${i} contains no key`, { line })
  }
  t.same(await tokenState(r), before, 'nothing in Redis changed')
  t.equal((await call(gw, 'GET', `/admin/tokens/${importedId as string}`)).status, 200, 'the imported token is still there')
  t.equal((await call(gw, 'GET', `/admin/tokens/${generatedId}`)).status, 200, 'and the created one')
  // Admin lines log the pattern for real ids too (and never the id under another name).
  const reqId = 'adm-show-pattern'
  await (await request(`${gw.url}/admin/tokens/${generatedId}`, { headers: { authorization: `Bearer ${ADMIN}`, 'x-request-id': reqId } })).body.dump()
  t.match(gw.logs.records().find((rec) => rec.reqId === reqId), { path: '/admin/tokens/:id', status: 200 })
  t.notOk(gw.logs.lines.some((l) => l.includes(generated) || l.includes(imported)), 'no log line anywhere contains a key')
})

t.test('names with C1 controls, line or paragraph separators or bidi controls are refused with 400', async (t) => {
  const r = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => r.disconnect())
  const before = await tokenState(r)
  const refused: Array<[string, string]> = [
    ['U+0080 (first C1)', 'a\u0080b'], ['U+0085 NEL', 'a\u0085b'], ['U+009F (last C1)', 'a\u009fb'],
    ['U+2028 LINE SEPARATOR', 'a\u2028b'], ['U+2029 PARAGRAPH SEPARATOR', 'a\u2029b'],
    ['U+202E RIGHT-TO-LEFT OVERRIDE', 'ci\u202ebot'], ['U+202A LRE', 'a\u202ab'], ['U+2066 LRI', 'a\u2066b'], ['U+2069 PDI', 'a\u2069b'],
    ['a newline', 'a\nb'], ['DEL', 'a\u007fb']
  ]
  // Escaped for the messages: a raw U+2028 in a failure diagnostic breaks tap's own line-based stream.
  const ascii = (s: string): string => s.replace(/[^\x20-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
  for (const [label, name] of refused) {
    const a = await call(gw, 'POST', '/admin/tokens', { body: { name, rate_limit: 5, allowed_routes: ['/*'] } })
    t.equal(a.status, 400, `${label}: ${ascii(a.text)}`)
    t.equal(a.body.code, 'BAD_REQUEST', `${label}: code`)
    t.match(String(a.body.message), /^name: must be free text, at most 128 characters, no control characters, line or paragraph separators or bidi overrides$/, `${label}: the message names the field and the rule`)
  }
  t.same(await tokenState(r), before, 'nothing was written to Redis')
  // What stays allowed: non-ASCII text, including right-to-left scripts and the LRM/RLM marks they need.
  for (const name of ['café – 東京', 'שלום 2', 'abc\u200fdef', 'tab-free text']) {
    const a = await call(gw, 'POST', '/admin/tokens', { body: { name, rate_limit: 5, allowed_routes: ['/*'] } })
    t.equal(a.status, 201, `${JSON.stringify(name)}: ${a.text}`)
    t.equal(a.body.name, name)
  }
})

t.test('Content-Type: application/json with no body is accepted on GET and DELETE (clients set it on every request)', async (t) => {
  const r = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => r.disconnect())
  const json = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }
  const mk = async (): Promise<string> => (await call(gw, 'POST', '/admin/tokens', { body: { rate_limit: 5, allowed_routes: ['/*'] } })).body.id as string
  const idA = await mk()
  const idB = await mk()

  // undici's fetch, as a client library with a global Content-Type would send it.
  const shown = await fetch(`${gw.url}/admin/tokens/${idA}`, { headers: json })
  t.equal(shown.status, 200, 'GET one')
  t.equal((await shown.json() as { id: string }).id, idA)
  const listed = await fetch(`${gw.url}/admin/tokens`, { headers: json })
  t.equal(listed.status, 200, 'GET the list')
  await listed.arrayBuffer()
  const before = await tokenState(r)
  const unknown = await fetch(`${gw.url}/admin/tokens/tok_unknownunkno`, { method: 'DELETE', headers: json })
  t.equal(unknown.status, 404, 'an unknown id is still a 404, not a body error')
  t.equal((await unknown.json() as { code: string }).code, 'TOKEN_NOT_FOUND')
  t.same(await tokenState(r), before, 'nothing written for an unknown id')
  const del = await fetch(`${gw.url}/admin/tokens/${idA}`, { method: 'DELETE', headers: json })
  t.equal(del.status, 204, `fetch DELETE: ${await del.text()}`)
  t.equal((await call(gw, 'GET', `/admin/tokens/${idA}`)).status, 404, 'revoked')

  // curl, with the header and an explicit empty body (Content-Length: 0), and with charset.
  const run = promisify(execFile)
  const curl = async (...args: string[]): Promise<string> => (await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', ...args])).stdout
  t.equal(await curl('-X', 'DELETE', '-H', `Authorization: Bearer ${ADMIN}`, '-H', 'Content-Type: application/json; charset=utf-8', '--data-binary', '', `${gw.url}/admin/tokens/${idB}`), '204', 'curl DELETE with Content-Length: 0')
  t.equal((await call(gw, 'GET', `/admin/tokens/${idB}`)).status, 404, 'revoked')
  t.equal(await curl('-H', `Authorization: Bearer ${ADMIN}`, '-H', 'Content-Type: application/json', `${gw.url}/admin/tokens`), '200', 'curl GET')
  // And an empty chunked body, on a raw socket.
  const idC = await mk()
  const chunked = await rawRequest(gw.url, `DELETE /admin/tokens/${idC} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`)
  t.equal(chunked.status, 204, 'DELETE with an empty chunked body')
  t.equal((await call(gw, 'GET', `/admin/tokens/${idC}`)).status, 404, 'revoked')

  // A create still needs its body: an empty one is a 400 naming the problem, and nothing is created.
  const count = (await call(gw, 'GET', '/admin/tokens')).body.length
  const empty = await fetch(`${gw.url}/admin/tokens`, { method: 'POST', headers: json })
  t.equal(empty.status, 400, 'POST with no body')
  const emptyBody = await empty.json() as { code: string }
  t.notMatch(emptyBody.code, /^FST_/, 'no Fastify code in the body')
  t.equal((await call(gw, 'GET', '/admin/tokens')).body.length, count, 'nothing created')
})

t.test('with Redis stopped the admin API answers 503, never 500, and recovers', async (t) => {
  const server = await new RedisServer().start()
  const g = await startGateway({ ...CALM, REDIS_URL: server.url, ADMIN_TOKEN: ADMIN, ROUTES })
  t.teardown(async () => { await g.app.close(); await server.close() })
  const created = await call(g, 'POST', '/admin/tokens', { body: { rate_limit: 100, allowed_routes: ['/*'] } })
  t.equal(created.status, 201)
  const id = created.body.id as string

  await server.stop()
  for (const [method, path, body] of [...ENDPOINTS, ['GET', `/admin/tokens/${id}`, undefined], ['DELETE', `/admin/tokens/${id}`, undefined]] as typeof ENDPOINTS) {
    const a = await call(g, method, path, { body })
    isError(t, a, 503, 'STORE_UNAVAILABLE', `${method} ${path} with Redis down`)
    t.match(a.headers['retry-after'], /^\d+$/)
  }
  // Authentication and validation need no Redis and keep their answers.
  t.equal((await call(g, 'GET', '/admin/tokens', { auth: 'Bearer nope-nope-nope-nope' })).status, 401)
  t.equal((await call(g, 'POST', '/admin/tokens', { body: { rate_limit: 0, allowed_routes: ['/*'] } })).status, 400)
  const proxied = await request(g.url + '/api/v1/users/1', { headers: { authorization: `Bearer ${created.body.api_key as string}` } })
  t.equal(proxied.statusCode, 503, 'the proxy too')
  await proxied.body.dump()

  // The restarted server is empty (no persistence): the admin API must answer for it again by itself.
  await server.start()
  let a: Answer | null = null
  const deadline = Date.now() + 20_000
  while (a?.status !== 200 && Date.now() < deadline) {
    a = await call(g, 'GET', '/admin/tokens')
    if (a.status !== 200) {
      t.equal(a.status, 503, 'while reconnecting: still 503')
      await sleep(100)
    }
  }
  t.equal(a?.status, 200, 'answers again once Redis is back')
  t.same(a?.body, [])
  t.equal((await call(g, 'POST', '/admin/tokens', { body: { rate_limit: 1, allowed_routes: ['/*'] } })).status, 201)
})
