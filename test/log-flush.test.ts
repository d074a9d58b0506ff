// The gateway's JSON log lines go through an asynchronous buffered destination (src/log-stream.ts,
// docs/performance.md): a real `serve` process must still write every request line before it exits
// on SIGTERM, and a line must not wait for the buffer to fill when traffic is low.
import t from 'tap'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedRedis, freePort } from './helpers/redis.js'
import { Upstream } from './helpers/upstream.js'
import { createTestToken } from './helpers/tokens.js'
import { CALM } from './helpers/gateway.js'
import { spawnServe, waitForOk, killHard, type ServeProcess } from './helpers/process.js'

const redis = await sharedRedis()
const token = await createTestToken(redis.url, { rate_limit: 100_000, burst: 100_000, window_seconds: 1 })
const echo = await new Upstream().start()
const running: ServeProcess[] = []
t.teardown(async () => {
  for (const p of running) await killHard(p)
  await echo.close()
  await redis.close()
})

async function serve (): Promise<{ p: ServeProcess, url: string }> {
  const port = await freePort()
  const p = spawnServe({ ...CALM, PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redis.url, LOG_LEVEL: 'info', ROUTES: `/api=${echo.url}` })
  running.push(p)
  const url = `http://127.0.0.1:${port}`
  if (!await waitForOk(url + '/healthz', 20_000)) throw new Error(`serve did not come up: ${p.stderr()}${p.stdout()}`)
  return { p, url }
}

/** The request lines of `prefix`'s requests in what the process wrote. */
function requestLines (out: string, prefix: string): Array<Record<string, unknown>> {
  return out.split('\n').filter((l) => l.includes(`"reqId":"${prefix}`)).map((l) => JSON.parse(l) as Record<string, unknown>)
}

t.test('SIGTERM right after the last answer: every request line is written before exit', async (t) => {
  const { p, url } = await serve()
  const N = 600
  const CONCURRENCY = 12
  let next = 0
  let ok = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < N) {
      const i = next++
      const res = await fetch(`${url}/api/item/${i}`, { headers: { authorization: token.bearer, 'x-request-id': `flush-${i}` } })
      await res.arrayBuffer()
      if (res.status === 200) ok++
    }
  }))
  t.equal(ok, N, 'every request was answered 200')
  p.proc.kill('SIGTERM')
  await once(p.proc, 'close') // exit, and stdout read to its end
  t.equal(p.proc.exitCode, 0, 'clean exit')
  const lines = requestLines(p.stdout(), 'flush-')
  t.equal(lines.length, N, `${lines.length} request lines of ${N}`)
  t.equal(new Set(lines.map((l) => l.reqId)).size, N, 'one line per request')
  t.ok(lines.every((l) => l.status === 200 && l.msg === 'request'), 'each is the request line of a 200')
  const all = p.stdout().trimEnd().split('\n')
  t.match(all[all.length - 1], /shut down cleanly/, 'the last line is the clean-stop line, after every request line')
})

t.test('at low traffic a request line is written without waiting for the buffer to fill', async (t) => {
  const { p, url } = await serve()
  const res = await fetch(`${url}/api/one`, { headers: { authorization: token.bearer, 'x-request-id': 'lonely-1' } })
  await res.arrayBuffer()
  t.equal(res.status, 200)
  const started = performance.now()
  while (requestLines(p.stdout(), 'lonely-').length === 0 && performance.now() - started < 5000) await sleep(20)
  const ms = performance.now() - started
  t.equal(requestLines(p.stdout(), 'lonely-').length, 1, 'the line was written while the process runs')
  t.ok(ms < 2000, `within the flush interval plus margin (${Math.round(ms)} ms)`)
  p.proc.kill('SIGTERM')
  await once(p.proc, 'close')
})
