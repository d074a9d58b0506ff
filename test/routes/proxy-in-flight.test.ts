// The per-token in-flight count is released exactly once on every path a proxied request can end
// by (docs/forwarding.md): answered, client gone while waiting / uploading / downloading, upstream
// refused, route timeout, body idle timeout, pipelined requests on a socket that dies. After each,
// the gauge is back to 0 and the token can again hold exactly MAX_IN_FLIGHT_PER_TOKEN requests.
import t, { type Test } from 'tap'
import { request } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedRedis, freePort } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection } from '../helpers/raw-http.js'
import { valueOf } from '../helpers/prometheus.js'
import { until } from '../helpers/until.js'

const BOUND = 3
const redis = await sharedRedis()
const token = await createTestToken(redis.url)
const up = await new Upstream((req, res) => {
  if (req.url?.startsWith('/api/hang') === true) return // never answers
  if (req.url?.startsWith('/api/stream') === true) { // a byte every 50 ms, forever
    res.writeHead(200, { 'content-type': 'text/plain' })
    const timer = setInterval(() => res.write('.'), 50)
    res.once('close', () => clearInterval(timer))
    return
  }
  const wait = req.url?.startsWith('/api/slow') === true ? 300 : 0
  setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('ok') }, wait)
}).start()
const routes = JSON.stringify([
  { prefix: '/api', upstream: up.url, timeoutMs: 400 },
  { prefix: '/dead', upstream: `http://127.0.0.1:${await freePort()}` }
])
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: routes, MAX_IN_FLIGHT_PER_TOKEN: String(BOUND), CLIENT_BODY_TIMEOUT_MS: '300', CIRCUIT_FAILURE_THRESHOLD: '0' })
const open: RawConnection[] = []
t.teardown(async () => {
  for (const c of open) c.close()
  await gw.app.close()
  await up.close()
  await redis.close()
})

async function inFlight (): Promise<number> {
  return valueOf(await (await request(gw.url + '/metrics')).body.text(), 'portcullis_proxy_in_flight_requests')
}

async function settlesToZero (): Promise<boolean> {
  return await until(async () => await inFlight() === 0, 10_000)
}

async function connect (): Promise<RawConnection> {
  const c = await RawConnection.open(gw.url)
  open.push(c)
  return c
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`
const upload = (path: string, length: number): string =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\nContent-Length: ${length}\r\n\r\n`

/** BOUND requests of the token at once are all admitted, one more is refused: nothing leaked. */
async function boundIntact (t: Test): Promise<void> {
  const statuses = await Promise.all(Array.from({ length: BOUND }, async (_, i) => {
    const res = await request(`${gw.url}/api/slow/${i}`, { headers: { authorization: token.bearer } })
    await res.body.dump()
    return res.statusCode
  }).concat((async () => {
    await sleep(100) // the BOUND slow ones are in flight by now
    const res = await request(`${gw.url}/api/over`, { headers: { authorization: token.bearer } })
    await res.body.dump()
    return res.statusCode
  })()))
  t.same(statuses, [...Array(BOUND).fill(200), 429], `${BOUND} admitted at once, the next refused`)
  t.ok(await settlesToZero(), 'back to 0')
}

type Path = [string, () => Promise<void>]
const paths: Path[] = [
  ['answered', async () => {
    for (let i = 0; i < BOUND + 2; i++) await (await request(gw.url + '/api/ok', { headers: { authorization: token.bearer } })).body.dump()
  }],
  ['client gone while waiting for the response head', async () => {
    for (let i = 0; i < BOUND; i++) { const c = await connect(); c.socket.write(get('/api/hang')) }
    await sleep(150)
    for (const c of open.splice(0)) c.close()
  }],
  ['client gone mid-upload', async () => {
    for (let i = 0; i < BOUND; i++) { const c = await connect(); c.socket.write(upload('/api/up', 1000) + 'part') }
    await sleep(150)
    for (const c of open.splice(0)) c.close()
  }],
  ['client gone mid-download', async () => {
    for (let i = 0; i < BOUND; i++) { const c = await connect(); c.socket.write(get('/api/stream')) }
    await sleep(200)
    for (const c of open.splice(0)) c.close()
  }],
  ['upstream refused (502)', async () => {
    const codes = await Promise.all(Array.from({ length: BOUND }, async () => {
      const res = await request(gw.url + '/dead/x', { headers: { authorization: token.bearer } })
      await res.body.dump()
      return res.statusCode
    }))
    if (codes.some((c) => c !== 502)) throw new Error(`expected 502s, got ${codes.join(',')}`)
  }],
  ['route timeout (504)', async () => {
    const codes = await Promise.all(Array.from({ length: BOUND }, async () => {
      const res = await request(gw.url + '/api/hang', { headers: { authorization: token.bearer } })
      await res.body.dump()
      return res.statusCode
    }))
    if (codes.some((c) => c !== 504)) throw new Error(`expected 504s, got ${codes.join(',')}`)
  }],
  ['client body idle timeout (408)', async () => {
    const cs = await Promise.all(Array.from({ length: BOUND }, async () => await connect()))
    const answers = await Promise.all(cs.map(async (c) => (await c.request(upload('/api/idle', 100) + 'abc')).status))
    if (answers.some((s) => s !== 408)) throw new Error(`expected 408s, got ${answers.join(',')}`)
    for (const c of open.splice(0)) c.close()
  }],
  ['pipelined requests on a socket that dies', async () => {
    const c = await connect()
    c.socket.write(get('/api/hang') + get('/api/hang/2') + get('/api/hang/3'))
    await sleep(200)
    for (const x of open.splice(0)) x.close()
  }]
]

for (const [name, run] of paths) {
  t.test(`released on: ${name}`, async (t) => {
    await run()
    t.ok(await settlesToZero(), 'the in-flight gauge returns to 0')
    await boundIntact(t)
  })
}
