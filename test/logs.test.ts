// Log lines of a real gateway process (`portcullis serve`), parsed from its stdout: the start-up
// line, ISO 8601 times, LOG_FORMAT=pretty, and the warnings while Redis is unreachable at start.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { RedisServer, freePort } from './helpers/redis.js'
import { spawnServe, waitForOk, killHard, type ServeProcess } from './helpers/process.js'
import { until } from './helpers/until.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { tmpdir } from 'node:os'
import { formatPretty } from '../src/lib/pretty-log.js'

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const PASSWORD = 'logs-test-s3cret'
const ROUTES = '/api/v1/users=http://127.0.0.1:1,/api/v1/products=http://127.0.0.1:2'

/** Polls until `pred` holds, the process has exited or `ms` have passed: whether `pred` holds. */
async function untilOutput (p: ServeProcess, pred: () => boolean, ms: number): Promise<boolean> {
  await until(() => pred() || p.proc.exitCode !== null, ms, 50)
  return pred()
}

const records = (text: string): Array<Record<string, unknown>> => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)

t.test('JSON (default): one start-up line with every field, ISO times, the password masked', async (t) => {
  const redis = await new RedisServer().start()
  const admin = redis.client()
  await admin.config('SET', 'requirepass', PASSWORD)
  admin.disconnect()
  const port = await freePort()
  const p = spawnServe({ REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${redis.port}/0`, ROUTES, PORT: String(port), HOST: '127.0.0.1', REDIS_KEY_PREFIX: 'logs:', ADMIN_TOKEN: 'a-long-admin-token-0123' })
  t.teardown(async () => { await killHard(p); await redis.close() })
  t.ok(await waitForOk(`http://127.0.0.1:${port}/healthz`, 20_000), 'serves')
  t.ok(await untilOutput(p, () => p.stdout().includes('portcullis started'), 5000))
  const recs = records(p.stdout())
  for (const r of recs) t.match(r.time, ISO, `ISO 8601 time on "${String(r.msg)}"`)
  const started = recs.filter((r) => r.msg === 'portcullis started')
  t.equal(started.length, 1, 'exactly one start-up line')
  t.match(started[0], {
    level: 30,
    version: VERSION,
    address: `http://127.0.0.1:${port}`,
    routes: { '/api/v1/users': 'http://127.0.0.1:1', '/api/v1/products': 'http://127.0.0.1:2' },
    redis: `redis://:***@127.0.0.1:${redis.port}/0`,
    keyPrefix: 'logs:',
    workers: 1,
    admin: true
  })
  t.notOk(p.stdout().includes(PASSWORD), 'the Redis password is in no line')
  t.notOk(p.stdout().includes('a-long-admin-token-0123'), 'nor the admin token')
  t.notOk(recs.some((r) => r.level as number >= 40), 'no warning when Redis is there at start')
})

t.test('LOG_FORMAT=pretty: one readable line per record, ISO time first', async (t) => {
  const redis = await new RedisServer().start()
  const port = await freePort()
  const p = spawnServe({ REDIS_URL: redis.url, ROUTES, PORT: String(port), HOST: '127.0.0.1', LOG_FORMAT: 'pretty' })
  t.teardown(async () => { await killHard(p); await redis.close() })
  t.ok(await waitForOk(`http://127.0.0.1:${port}/healthz`, 20_000))
  t.ok(await untilOutput(p, () => p.stdout().includes('portcullis started'), 5000))
  await fetch(`http://127.0.0.1:${port}/api/v1/users/1`).then(async (r) => await r.arrayBuffer())
  t.ok(await untilOutput(p, () => /path=\/api\/v1\/users\/1/.test(p.stdout()), 5000), 'the request line arrives')
  const lines = p.stdout().split('\n').filter((l) => l !== '')
  for (const l of lines) {
    t.notOk(l.startsWith('{'), `not JSON: ${l}`)
    t.match(l, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (INFO |WARN |ERROR) \S/, 'time, level, message')
  }
  const start = lines.find((l) => l.includes('portcullis started')) ?? ''
  t.match(start, `version=${VERSION}`)
  t.match(start, `address=http://127.0.0.1:${port}`)
  t.match(start, `redis=${redis.url}`)
  t.match(start, 'routes={"/api/v1/users":"http://127.0.0.1:1"')
  t.match(lines.find((l) => / request .*path=\/api\/v1\/users\/1/.test(l)) ?? '', /status=401/)
})

t.test('Redis unreachable at start: a warn at once naming the masked target and the error, then with backoff', async (t) => {
  let redis: ChildProcess | null = null
  const redisPort = await freePort()
  const port = await freePort()
  const p = spawnServe({ REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${redisPort}`, ROUTES, PORT: String(port), HOST: '127.0.0.1' })
  t.teardown(async () => { await killHard(p); redis?.kill('SIGKILL') })
  t.ok(await untilOutput(p, () => p.stdout().includes('cannot reach Redis'), 15_000), 'a warning')
  t.ok(await untilOutput(p, () => records(p.stdout()).filter((r) => r.level === 40).length >= 3, 12_000), 'three warnings within 12 s')
  const warns = records(p.stdout()).filter((r) => r.level === 40)
  t.match(warns[0], {
    msg: `cannot reach Redis at redis://:***@127.0.0.1:${redisPort}; waiting for it before listening`,
    redis: `redis://:***@127.0.0.1:${redisPort}`,
    err: { type: 'Error', message: /ECONNREFUSED/, code: 'ECONNREFUSED' }
  })
  t.notOk('stack' in (warns[0]?.err as object), 'no empty stack')
  t.ok(Number(warns[0]?.waitedMs) < 1000, `the first warning comes at once, not after 5 s (${String(warns[0]?.waitedMs)} ms)`)
  const gaps = warns.slice(1).map((w, i) => Date.parse(String(w.time)) - Date.parse(String(warns[i]?.time)))
  t.ok((gaps[1] ?? 0) > (gaps[0] ?? 0) + 500, `the gaps grow: ${gaps.join(', ')} ms`)
  t.same(warns.map((w) => w.nextWarningInMs).slice(0, 3), [1000, 2000, 4000])
  t.notOk(p.stdout().includes(PASSWORD))

  // Redis comes: an info line, then the start-up line, then it serves.
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--requirepass', PASSWORD, '--save', '', '--appendonly', 'no'], { cwd: tmpdir(), stdio: 'ignore' })
  t.ok(await waitForOk(`http://127.0.0.1:${port}/healthz`, 20_000), 'serves once Redis is there')
  t.ok(await untilOutput(p, () => p.stdout().includes('portcullis started'), 5000))
  const recs = records(p.stdout())
  const reachable = recs.findIndex((r) => r.msg === `Redis at redis://:***@127.0.0.1:${redisPort} is reachable`)
  t.ok(reachable > 0, 'an info line when Redis answers')
  t.ok(recs.findIndex((r) => r.msg === 'portcullis started') > reachable, 'then the start-up line')
})

t.test('formatPretty', async (t) => {
  t.equal(formatPretty('not json'), 'not json')
  t.equal(formatPretty('[1]'), '[1]')
  t.equal(formatPretty('{"level":30,"time":"2026-01-02T03:04:05.678Z","pid":1,"hostname":"h","msg":"request","method":"GET","url":"/a b","status":200}'),
    '2026-01-02T03:04:05.678Z INFO  request method=GET url="/a b" status=200')
  t.equal(formatPretty('{"level":50,"time":0,"msg":"x","err":{"type":"Error","message":"boom","code":"E1","stack":"Error: boom\\n    at f (a.js:1)"}}'),
    '1970-01-01T00:00:00.000Z ERROR x err="Error: boom" err.code=E1\n    at f (a.js:1)')
})
