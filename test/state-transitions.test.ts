// State changes are logged once per transition, never per request (docs/observability.md): a
// route's circuit opening, half-opening and closing; the Redis connection lost (redis-server
// SIGKILLed) and restored; load shedding starting and stopping (Redis frozen with SIGSTOP).
import t from 'tap'
import { RedisServer, freePort } from './helpers/redis.js'
import { Upstream } from './helpers/upstream.js'
import { createTestToken } from './helpers/tokens.js'
import { startGateway, type TestGateway } from './helpers/gateway.js'
import { rawRequest, rawGet } from './helpers/raw-http.js'
import { until } from './helpers/until.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Log records other than request lines: the state changes (and anything else logged). */
const events = (gw: TestGateway): Array<Record<string, unknown>> => gw.logs.records().filter((r) => r.msg !== 'request')
const count = (gw: TestGateway, re: RegExp): number => events(gw).filter((r) => re.test(String(r.msg))).length

// No shedding on event-loop delay (a busy test machine); Redis is the only pressure here.
const QUIET = { PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' }

t.test('a circuit: one warn when it opens, one info each when it half-opens and closes', async (t) => {
  const redis = await new RedisServer().start()
  t.teardown(() => redis.close())
  const token = await createTestToken(redis.url)
  const port = await freePort() // nothing listens yet: connections are refused
  const gw = await startGateway({ ...QUIET, REDIS_COMMAND_TIMEOUT_MS: '5000', REDIS_URL: redis.url, ROUTES: `/api=http://127.0.0.1:${port}`, CIRCUIT_FAILURE_THRESHOLD: '2', CIRCUIT_COOLDOWN_MS: '500' })
  t.teardown(() => gw.app.close())
  const call = async (): Promise<number> => (await rawRequest(gw.url, rawGet('/api/x', [`Authorization: ${token.bearer}`]))).status
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push(await call())
  t.same(statuses, [502, 502, 503, 503, 503, 503, 503, 503], 'two failures open it, then CIRCUIT_OPEN')
  const upstream = await new Upstream().start(port)
  t.teardown(() => upstream.close())
  await sleep(700)
  t.equal(await call(), 200, 'after the cooldown the probe goes through and closes it')
  for (let i = 0; i < 3; i++) t.equal(await call(), 200)

  const circuit = events(gw).filter((r) => /^circuit /.test(String(r.msg)))
  t.same(circuit.map((r) => [r.level, r.from, r.to]), [[40, 'closed', 'open'], [30, 'open', 'half-open'], [30, 'half-open', 'closed']],
    'exactly three lines: opened (warn), half-open, closed (info)')
  t.match(circuit[0], { route: '/api', upstream: `http://127.0.0.1:${port}`, cooldownMs: 500 })
})

t.test('Redis killed and restarted: one warn when the connection is lost, one info when it is back; shedding once each way', async (t) => {
  const redis = await new RedisServer().start()
  t.teardown(() => redis.close())
  const token = await createTestToken(redis.url)
  const upstream = await new Upstream().start()
  t.teardown(() => upstream.close())
  const gw = await startGateway({ ...QUIET, REDIS_URL: `redis://:secret-pw@127.0.0.1:${redis.port}`, ROUTES: `/api=${upstream.url}` })
  t.teardown(() => gw.app.close())
  // requirepass is off: the password is only there to show it is masked.
  await until(() => events(gw).some((r) => r.msg === 'redis connection ready'), 5000)
  let bearer = token.bearer
  const call = async (): Promise<number> => (await rawRequest(gw.url, rawGet('/api/x', [`Authorization: ${bearer}`]))).status
  t.equal(await call(), 200)

  await redis.stop()
  const down: number[] = []
  const stoppedAt = Date.now()
  while (Date.now() - stoppedAt < 3000) { down.push(await call()); await sleep(50) }
  t.ok(down.length >= 20 && down.every((s) => s === 503), `${down.length} requests while Redis was down, all 503`)
  t.ok(await until(() => count(gw, /^load shedding started/) === 1, 3000), 'load shedding started')
  await redis.start()
  bearer = (await createTestToken(redis.url)).bearer // the restarted redis-server is empty
  t.ok(await until(() => count(gw, /^redis connection restored/) === 1, 10_000), 'the restored line')
  t.ok(await until(() => count(gw, /^load shedding stopped/) === 1, 5000), 'load shedding stopped')
  let back = 0
  for (let i = 0; i < 100 && back !== 200; i++) { back = await call(); await sleep(50) }
  t.equal(back, 200, 'served again')
  await sleep(1500) // another health check or two: nothing more is logged

  t.equal(count(gw, /^redis connection lost/), 1, 'one "lost" line, not one per reconnect attempt or request')
  t.equal(count(gw, /^redis connection restored/), 1, 'one "restored" line')
  t.equal(count(gw, /^load shedding started/), 1, 'one "started" line')
  t.equal(count(gw, /^load shedding stopped/), 1, 'one "stopped" line')
  const lost = events(gw).find((r) => /^redis connection lost/.test(String(r.msg)))
  t.match(lost, { level: 40, redis: `redis://:***@127.0.0.1:${redis.port}` }, 'warn, naming the target with the password masked')
  const restored = events(gw).find((r) => /^redis connection restored/.test(String(r.msg)))
  t.ok(typeof restored?.downMs === 'number' && restored.downMs >= 2500, `restored says how long it was down (${String(restored?.downMs)} ms)`)
  t.match(events(gw).find((r) => /^load shedding started/.test(String(r.msg))), { level: 40, reason: 'redis' })
  t.notOk(gw.logs.lines.some((l) => l.includes('secret-pw')), 'the password is in no line')
  const noisy = events(gw).filter((r) => (r.level as number) >= 40)
  t.equal(noisy.length, 2, `warn or above: only the two transitions (${noisy.map((r) => String(r.msg)).join(' | ')})`)
})

t.test('Redis frozen (SIGSTOP): load shedding starts once and stops once; the connection was never lost', async (t) => {
  const redis = await new RedisServer().start()
  t.teardown(async () => { redis.resume(); await redis.close() })
  const gw = await startGateway({ ...QUIET, REDIS_URL: redis.url, ROUTES: '/api=http://127.0.0.1:9' })
  t.teardown(() => gw.app.close())
  redis.pause()
  t.ok(await until(() => count(gw, /^load shedding started/) === 1, 6000), 'load shedding started')
  for (let i = 0; i < 10; i++) t.equal((await rawRequest(gw.url, rawGet('/api/x'))).status, 503, 'shed')
  const shed = gw.logs.records().filter((r) => r.msg === 'request' && r.path === '/api/x')
  t.equal(shed.length, 10, 'one request line per shed request')
  t.ok(shed.every((r) => r.code === 'STORE_UNAVAILABLE' && r.route === '/api'), 'each with its code and its route, as the metrics label it')
  await sleep(1500)
  redis.resume()
  t.ok(await until(() => count(gw, /^load shedding stopped/) === 1, 6000), 'load shedding stopped')
  await sleep(1500)
  t.equal(count(gw, /^load shedding started/), 1, 'one "started" line for the whole stall')
  t.equal(count(gw, /^load shedding stopped/), 1, 'one "stopped" line')
  t.equal(count(gw, /^redis connection lost/), 0, 'a stall is not a lost connection')
})
