// Routing of the proxy over real sockets: longest whole-segment prefix, the path and query as sent,
// every method, the upstream's answer passed back, and the gateway's own paths never proxied.
import t from 'tap'
import { request } from 'undici'
import { gzipSync } from 'node:zlib'
import type { ServerResponse } from 'node:http'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { rawRequest, rawGet, json, type RawResponse } from '../helpers/raw-http.js'

const redis = await sharedRedis()
// Each upstream names itself, so a test sees which route a request took.
const v1 = await new Upstream((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ upstream: 'v1', method: req.method, url: req.url }))
}).start()
const users = await new Upstream((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ upstream: 'users', method: req.method, url: req.url }))
}).start()
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1=${v1.url},/api/v1/users=${users.url}` })
const token = await createTestToken(redis.url)
const auth = { authorization: token.bearer }
t.teardown(async () => {
  await gw.app.close()
  await v1.close()
  await users.close()
  await redis.close()
})

async function get (path: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await request(gw.url + path, { headers: auth })
  return { status: res.statusCode, body: await res.body.json() as Record<string, unknown> }
}

t.test('the longest matching prefix wins, on whole segments', async (t) => {
  const cases: Array<[string, 'v1' | 'users', string]> = [
    ['/api/v1/users', 'users', '/api/v1/users'],
    ['/api/v1/users/7', 'users', '/api/v1/users/7'],
    ['/api/v1/users/7/orders', 'users', '/api/v1/users/7/orders'],
    ['/api/v1', 'v1', '/api/v1'],
    ['/api/v1/products/1', 'v1', '/api/v1/products/1'],
    ['/api/v1/usersX', 'v1', '/api/v1/usersX'], // not below /api/v1/users, but below /api/v1
    ['/api/v1/user', 'v1', '/api/v1/user']
  ]
  for (const [path, upstream, url] of cases) {
    const { status, body } = await get(path)
    t.equal(status, 200, path)
    t.same(body, { upstream, method: 'GET', url }, path)
  }
})

t.test('a path that only shares characters with a prefix is a 404 in the gateway error shape', async (t) => {
  const gw2 = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${users.url}` })
  t.teardown(() => gw2.app.close())
  const before = users.seen.length
  for (const path of ['/api/v1/usersX', '/api/v1/users.json', '/api/v1/user', '/api/v', '/api', '/']) {
    const res = await request(gw2.url + path, { headers: auth })
    t.equal(res.statusCode, 404, path)
    t.match(res.headers['content-type'], /^application\/json/)
    t.same(await res.body.json(), {
      statusCode: 404, code: 'ROUTE_NOT_FOUND', error: 'Not Found', message: 'No route for this path'
    }, path)
  }
  t.equal(users.seen.length, before, 'the upstream saw none of them')
})

t.test('a trailing slash is kept, and still matches its prefix', async (t) => {
  t.same((await get('/api/v1/users/')).body, { upstream: 'users', method: 'GET', url: '/api/v1/users/' })
  t.same((await get('/api/v1/users/7/')).body, { upstream: 'users', method: 'GET', url: '/api/v1/users/7/' })
  t.same((await get('/api/v1/')).body, { upstream: 'v1', method: 'GET', url: '/api/v1/' })
})

t.test('the query string reaches the upstream byte for byte', async (t) => {
  const queries = ['?a=1&b=%2F&c=..&d', '?', '?x=%zz&y=%252e&z=a+b', '?q=%E2%82%AC&&=&a=1;b=2', "?s=!$'()*,:@/?"]
  for (const q of queries) {
    const res = await rawRequest(gw.url, rawGet('/api/v1/users/7' + q, [`Authorization: ${token.bearer}`]))
    t.equal(res.status, 200, q)
    t.equal(json(res).url, '/api/v1/users/7' + q, q)
  }
})

t.test('every method reaches the upstream as sent, and its answer comes back', async (t) => {
  const answer = await new Upstream((req, res, seen) => {
    res.writeHead(201, { 'content-type': 'text/plain', 'x-upstream': 'yes', 'set-cookie': ['a=1', 'b=2'] })
    res.end(`${req.method ?? ''} ${req.url ?? ''} ${seen.bodyBytes}`)
  }).start()
  const gw3 = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${answer.url}` })
  t.teardown(async () => { await gw3.app.close(); await answer.close() })
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'QUERY', 'PROPFIND']
  for (const method of methods) {
    const withBody = !['GET', 'HEAD', 'TRACE'].includes(method)
    const res = await request(gw3.url + '/api/v1/users/7?m=1', {
      method: method as 'GET',
      headers: { ...auth, ...(withBody ? { 'content-type': 'application/octet-stream' } : {}) },
      ...(withBody ? { body: 'hello' } : {})
    })
    const text = await res.body.text()
    t.equal(res.statusCode, 201, method)
    t.equal(answer.last().method, method, `${method}: the upstream saw the same method`)
    t.equal(answer.last().url, '/api/v1/users/7?m=1', method)
    t.equal(res.headers['x-upstream'], 'yes', `${method}: upstream headers come back`)
    t.same(res.headers['set-cookie'], ['a=1', 'b=2'], `${method}: repeated upstream headers stay separate`)
    t.equal(text, method === 'HEAD' ? '' : `${method} /api/v1/users/7?m=1 ${withBody ? 5 : 0}`, `${method}: body`)
  }
  t.equal(answer.seen.length, methods.length, 'one upstream request per client request')
})

t.test('bodiless answers and encoded bodies come back as the upstream made them', async (t) => {
  const gz = gzipSync('hello hello hello')
  const answers: Record<string, (res: ServerResponse) => void> = {
    '/api/v1/users/head': (res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' }); res.end() },
    '/api/v1/users/204': (res) => { res.writeHead(204, { 'x-a': '1' }); res.end() },
    '/api/v1/users/304': (res) => { res.writeHead(304, { etag: '"v1"' }); res.end() },
    '/api/v1/users/gz': (res) => { res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': String(gz.length) }); res.end(gz) }
  }
  const up = await new Upstream((req, res) => { answers[req.url ?? '']?.(res) }).start()
  const g = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${up.url}` })
  t.teardown(async () => { await g.app.close(); await up.close() })
  const send = async (method: string, path: string): Promise<RawResponse> => await rawRequest(g.url,
    `${method} ${path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nAuthorization: ${token.bearer}\r\n\r\n`, { head: method === 'HEAD' })
  const head = await send('HEAD', '/api/v1/users/head')
  t.equal(head.status, 200)
  t.same(head.headers['content-length'], ['11'], 'HEAD keeps the length a GET would have')
  const noContent = await send('GET', '/api/v1/users/204')
  t.equal(noContent.status, 204)
  t.same(noContent.headers['x-a'], ['1'])
  const notModified = await send('GET', '/api/v1/users/304')
  t.equal(notModified.status, 304)
  t.same(notModified.headers.etag, ['"v1"'])
  const zipped = await send('GET', '/api/v1/users/gz')
  t.same(zipped.headers['content-encoding'], ['gzip'])
  t.ok(zipped.body.equals(gz), 'a compressed body passes through untouched')
  t.equal(up.last().headers['accept-encoding'], 'gzip', 'Accept-Encoding is forwarded')
})

t.test('an unrouted path is a 404 without any token, even a bad one', async (t) => {
  for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 'Basic x' }]) {
    const res = await request(gw.url + '/nowhere/at/all', { headers })
    t.equal(res.statusCode, 404)
    t.equal((await res.body.json() as { code: string }).code, 'ROUTE_NOT_FOUND')
  }
})

t.test('a routed path needs a token (the proxy does not forward anonymous requests)', async (t) => {
  const before = users.seen.length
  const res = await request(gw.url + '/api/v1/users/7')
  t.equal(res.statusCode, 401)
  t.equal((await res.body.json() as { code: string }).code, 'TOKEN_MISSING')
  t.equal(users.seen.length, before)
})

t.test('the gateway answers its own paths and never proxies them', async (t) => {
  const root = await new Upstream().start()
  // A route below which /healthz would fall if the gateway's paths were not checked first.
  const gw4 = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${root.url}` })
  t.teardown(async () => { await gw4.app.close(); await root.close() })
  const health = await request(gw4.url + '/healthz')
  t.equal(health.statusCode, 200)
  t.same(await health.body.json(), { status: 'ok' })
  const ready = await request(gw4.url + '/readyz')
  t.equal(ready.statusCode, 200)
  t.same(await ready.body.json(), { status: 'ready' })
  for (const path of ['/healthz/x', '/readyzz', '/api-not/x']) {
    const res = await request(gw4.url + path, { headers: auth })
    t.equal(res.statusCode, 404, path)
    await res.body.dump()
  }
  t.equal(root.seen.length, 0, 'nothing reached the upstream')
})
