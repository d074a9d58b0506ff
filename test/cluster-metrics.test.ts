// WORKERS=2 for real: `node bin/portcullis.js serve` (the compiled dist/, built by `npm test`
// before tap runs) with two workers; /metrics on either worker sums both.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { get as httpGet } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, sharedRedis } from './helpers/redis.js'
import { Upstream } from './helpers/upstream.js'
import { valueOf } from './helpers/prometheus.js'

/** One GET on a fresh connection, so the primary hands each one to the next worker. */
async function freshGet (url: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    httpGet(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    }).on('error', reject)
  })
}

t.test('with WORKERS=2, /metrics answers the sum over both workers', async (t) => {
  t.ok(existsSync('dist/src/cli.js'), 'dist/ is built (npm run build)')
  const redis = await sharedRedis()
  t.teardown(() => redis.close())
  const upstream = await new Upstream().start()
  t.teardown(() => upstream.close())
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const proc = spawn(process.execPath, ['bin/portcullis.js', 'serve'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redis.url, ROUTES: `/api/v1/users=${upstream.url}`, WORKERS: '2', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  proc.stderr?.on('data', (c: Buffer) => { stderr += c.toString() })
  const exited = once(proc, 'exit')
  t.teardown(async () => {
    if (proc.exitCode === null) { proc.kill('SIGKILL'); await exited }
  })

  // Ready once both workers have joined the aggregation.
  let workers = 0
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline && workers < 2) {
    try {
      const res = await freshGet(base + '/metrics')
      if (res.status === 200) workers = valueOf(res.body, 'portcullis_workers')
    } catch {}
    if (workers < 2) await sleep(100)
  }
  t.equal(workers, 2, `both workers report (stderr: ${stderr.slice(0, 500)})`)

  const n = 20
  for (let i = 0; i < n; i++) t.equal((await freshGet(base + '/healthz')).status, 200)
  const started = performance.now()
  const scrape = await freshGet(base + '/metrics')
  const ms = performance.now() - started
  t.equal(scrape.status, 200)
  t.equal(valueOf(scrape.body, 'portcullis_http_requests_total', { route: '/healthz', status_class: '2xx' }), n,
    'every /healthz request is counted once, whichever worker served it')
  t.equal(valueOf(scrape.body, 'portcullis_http_request_duration_seconds_count', { route: '/healthz' }), n)
  t.match(scrape.body, /^portcullis_process_resident_memory_bytes \d/m, 'process metrics are aggregated too')
  t.comment(`aggregated /metrics over 2 workers answered in ${ms.toFixed(1)} ms`)

  // Scrapes are counted too: the next scrape, on either worker, sees them all.
  const again = await freshGet(base + '/metrics')
  t.ok(valueOf(again.body, 'portcullis_http_requests_total', { route: '/metrics' }) >= 1)
  t.equal(valueOf(again.body, 'portcullis_http_requests_total', { route: '/healthz' }), n)

  proc.kill('SIGTERM')
  const [code] = await exited
  t.equal(code, 0, 'the primary and both workers shut down cleanly')
})
