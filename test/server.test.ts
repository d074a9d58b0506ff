// `node bin/portcullis.js serve` as a real process (docs/configuration.md): graceful drain on SIGTERM, the grace
// deadline, WORKERS=2 with the primary forwarding the signal, and a SIGTERM that comes before it serves.
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { sharedRedis, freePort } from './helpers/redis.js'
import { Upstream } from './helpers/upstream.js'
import { createTestToken } from './helpers/tokens.js'
import { CALM, startGateway } from './helpers/gateway.js'
import { RawConnection, rawRequest, header, json, type RawResponse } from './helpers/raw-http.js'
import { spawnServe, exitWithin, waitForOk, killHard, type ServeProcess } from './helpers/process.js'
import { until } from './helpers/until.js'

const redis = await sharedRedis()
const token = await createTestToken(redis.url)
const SLOW_MS = 1500
const BODY = Buffer.alloc(256 * 1024, 'portcullis ')
const slow = await new Upstream((_req, res) => {
  setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end(BODY) }, SLOW_MS)
}).start()
const silent = await new Upstream(() => {}).start()
const echo = await new Upstream().start()
const running: ServeProcess[] = []
t.teardown(async () => {
  for (const p of running) await killHard(p)
  for (const u of [slow, silent, echo]) await u.close()
  await redis.close()
})

/** Starts `serve` on a free port (the shared Redis unless `env` names another) without waiting for it. */
async function spawnOnFreePort (env: Record<string, string>): Promise<{ p: ServeProcess, url: string }> {
  const port = await freePort()
  const p = spawnServe({ ...CALM, PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redis.url, LOG_LEVEL: 'info', ...env })
  running.push(p)
  return { p, url: `http://127.0.0.1:${port}` }
}

/** Starts `serve` on a free port and waits until /healthz answers. */
async function serve (env: Record<string, string>): Promise<{ p: ServeProcess, url: string }> {
  const { p, url } = await spawnOnFreePort(env)
  if (!await waitForOk(url + '/healthz', 20_000)) throw new Error(`serve did not come up: ${p.stderr()}${p.stdout()}`)
  return { p, url }
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`

/** True when a fresh connection is refused or answered 503; false when it is served as ready. */
async function refusesNewWork (url: string): Promise<boolean> {
  try {
    const c = await RawConnection.open(url)
    try {
      return (await c.request(get('/readyz'))).status === 503
    } catch {
      return true // accepted, then closed without an answer
    } finally {
      c.close()
    }
  } catch {
    return true // ECONNREFUSED: the listener is closed
  }
}

t.test('SIGTERM drains: the in-flight request completes, readiness fails, exit 0 within the grace', async (t) => {
  const GRACE = 8000
  const { p, url } = await serve({ ROUTES: `/api=${slow.url}`, SHUTDOWN_GRACE_MS: String(GRACE) })
  const keepAlive = await RawConnection.open(url)
  const inFlight = await RawConnection.open(url)
  t.teardown(() => { keepAlive.close(); inFlight.close() })
  const ready = await keepAlive.request(get('/readyz'))
  t.equal(ready.status, 200, 'ready before the signal')
  t.equal(header(ready, 'connection'), 'keep-alive')

  const before = slow.started
  const slowResponse = inFlight.request(get('/api/slow'))
  while (slow.started === before) await new Promise((resolve) => setTimeout(resolve, 10))
  const signalled = performance.now()
  p.proc.kill('SIGTERM')
  while (!p.stdout().includes('draining') && p.proc.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 10))

  // The already-open keep-alive connection: closed by the server, or a 503 shutting_down.
  let readiness: RawResponse | null = null
  try {
    readiness = await keepAlive.request(get('/readyz'))
  } catch {}
  if (readiness === null) {
    t.ok(keepAlive.closed, 'the idle keep-alive connection was closed')
  } else {
    t.equal(readiness.status, 503, 'readiness fails while draining')
    t.match(json(readiness), { status: 'unavailable', reason: 'shutting_down' })
    t.equal(header(readiness, 'connection'), 'close')
  }
  t.ok(await refusesNewWork(url), 'new connections are refused or told 503')

  const res = await slowResponse
  t.equal(res.status, 200, 'the in-flight request completed')
  t.ok(res.body.equals(BODY), `with its full body (${res.body.length} of ${BODY.length} bytes)`)
  t.equal(header(res, 'connection'), 'close', 'a response while draining carries Connection: close')
  t.ok(await inFlight.waitClosed(5000), 'and its connection is closed after it')

  const exit = await exitWithin(p, GRACE + 5000)
  const ms = performance.now() - signalled
  t.same(exit, { code: 0, signal: null }, 'exit code 0')
  t.ok(ms >= SLOW_MS - 200, `not before the in-flight request finished (${Math.round(ms)} ms)`)
  t.ok(ms < GRACE + 3000, `within SHUTDOWN_GRACE_MS + margin (${Math.round(ms)} ms)`)
  t.comment(`SIGTERM → exit 0: ${Math.round(ms)} ms with a ${SLOW_MS} ms request in flight`)
  t.match(p.stdout(), /shut down cleanly/)
})

t.test('a request that outlives SHUTDOWN_GRACE_MS makes the process exit non-zero on time', async (t) => {
  const { p, url } = await serve({ ROUTES: `/api=${silent.url}`, SHUTDOWN_GRACE_MS: '500' })
  const c = await RawConnection.open(url)
  t.teardown(() => c.close())
  const before = silent.started
  const stuck = c.request(get('/api/never')).then(() => 'answered', () => 'dropped')
  while (silent.started === before) await new Promise((resolve) => setTimeout(resolve, 10))
  const signalled = performance.now()
  p.proc.kill('SIGTERM')
  const exit = await exitWithin(p, 10_000)
  const ms = performance.now() - signalled
  t.not(exit, null, 'the process exited')
  t.not(exit?.code, 0, `with a non-zero code (${JSON.stringify(exit)})`)
  t.ok(ms < 3000, `within ~3 s (${Math.round(ms)} ms)`)
  t.equal(await stuck, 'dropped', 'the stuck request was cut, not answered')
  t.match(p.stdout(), /shutdown grace expired/)
})

t.test('while draining, an open keep-alive connection gets 503 shutting_down and Connection: close', async (t) => {
  // In-process, so the moment draining starts is known exactly (a signal's arrival is not).
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api=${echo.url}` })
  t.teardown(() => gw.app.close())
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  t.equal((await c.request(get('/readyz'))).status, 200)
  gw.app.lifecycle.beginDraining()
  const ready = await c.request(get('/readyz'))
  t.equal(ready.status, 503)
  t.same(json(ready), { status: 'unavailable', reason: 'shutting_down' })
  t.equal(header(ready, 'connection'), 'close')
  t.ok(await c.waitClosed(5000), 'the server closes the connection after it')
  const proxied = await rawRequest(gw.url, get('/api/x'))
  t.equal(proxied.status, 200, 'requests still reaching the gateway are served')
  t.equal(header(proxied, 'connection'), 'close', 'and told to go elsewhere next time')
})

/** Direct children of `pid` that are node processes. */
async function nodeChildren (pid: number): Promise<number[]> {
  try {
    const { stdout } = await promisify(execFile)('ps', ['-o', 'pid=,comm=', '--ppid', String(pid)])
    return stdout.split('\n').map((l) => l.trim().split(/\s+/)).filter(([, comm]) => comm === 'node').map(([child]) => Number(child))
  } catch {
    return [] // ps exits 1 when there are none
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('WORKERS=2: two worker processes serve, SIGTERM to the primary stops them all', async (t) => {
  const { p, url } = await serve({ ROUTES: `/api=${echo.url}`, WORKERS: '2', SHUTDOWN_GRACE_MS: '5000' })
  const primary = p.proc.pid as number
  let workers: number[] = []
  for (let i = 0; i < 200 && (workers.length < 2 || (p.stdout().match(/Server listening/g) ?? []).length < 2); i++) {
    workers = await nodeChildren(primary)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(workers.length, 2, `the primary has two node children (${workers.join(', ')})`)
  t.equal((p.stdout().match(/Server listening/g) ?? []).length, 2, 'both workers listen')

  // Fresh connections are spread over the workers; the request log line says which pid served.
  const statuses: number[] = []
  for (let i = 0; i < 20; i++) statuses.push((await rawRequest(url, get(`/api/${i}`))).status)
  t.same(new Set(statuses), new Set([200]), 'every request was answered 200')
  await new Promise((resolve) => setTimeout(resolve, 200))
  const servedBy = new Set(p.stdout().split('\n').filter((l) => l.includes('"msg":"request"') && l.includes('/api/'))
    .map((l) => (JSON.parse(l) as { pid: number }).pid))
  t.same([...servedBy].sort(), [...workers].sort(), 'requests were served by both workers')

  const signalled = performance.now()
  p.proc.kill('SIGTERM')
  const exit = await exitWithin(p, 10_000)
  t.same(exit, { code: 0, signal: null }, 'the primary exits 0')
  t.ok(performance.now() - signalled < 8000, 'within the grace period + margin')
  for (let i = 0; i < 100 && workers.some(alive); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(workers.filter(alive), [], 'no worker is left running')
})

const SHUTDOWN_BEFORE_SERVING = 'shutdown requested before the gateway was serving; nothing to drain'
const linesWith = (p: ServeProcess, text: string): Array<{ pid: number }> =>
  p.stdout().split('\n').filter((l) => l.includes(text)).map((l) => JSON.parse(l) as { pid: number })

t.test('a SIGTERM while it still waits for Redis exits 0 at once: nothing was in flight', async (t) => {
  const { p } = await spawnOnFreePort({ ROUTES: `/api=${echo.url}`, REDIS_URL: `redis://127.0.0.1:${await freePort()}` })
  t.ok(await until(() => p.stdout().includes('waiting for it before listening'), 20_000), `waiting for Redis (${p.stderr()})`)
  p.proc.kill('SIGTERM')
  t.same(await exitWithin(p, 5000), { code: 0, signal: null }, 'exit 0, not killed by the signal')
  t.equal(linesWith(p, SHUTDOWN_BEFORE_SERVING).length, 1, 'and says why')
})

t.test('WORKERS=2: a SIGTERM while the workers wait for Redis stops them all, exit 0', async (t) => {
  const { p } = await spawnOnFreePort({ ROUTES: `/api=${echo.url}`, REDIS_URL: `redis://127.0.0.1:${await freePort()}`, WORKERS: '2' })
  const waiting = (): number => new Set(linesWith(p, 'waiting for it before listening').map((l) => l.pid)).size
  t.ok(await until(() => waiting() === 2, 20_000), `both workers wait for Redis (${p.stderr()})`)
  const workers = await nodeChildren(p.proc.pid as number)
  p.proc.kill('SIGTERM')
  t.same(await exitWithin(p, 5000), { code: 0, signal: null }, 'the primary exits 0')
  t.same(new Set(linesWith(p, SHUTDOWN_BEFORE_SERVING).map((l) => l.pid)), new Set(workers), 'each worker says it had nothing to drain')
  t.same(workers.filter(alive), [], 'no worker is left running')
})

t.test('WORKERS=2: a SIGTERM right after the workers are forked exits 0 too', async (t) => {
  // The workers are still starting Node: they may die of the forwarded signal before any handler
  // of theirs exists; with nothing in flight, that is a clean shutdown.
  const { p } = await spawnOnFreePort({ ROUTES: `/api=${echo.url}`, WORKERS: '2' })
  t.ok(await until(() => p.stdout().includes('primary started workers'), 20_000), `forked (${p.stderr()})`)
  p.proc.kill('SIGTERM')
  t.same(await exitWithin(p, 10_000), { code: 0, signal: null }, 'the primary exits 0')
})
