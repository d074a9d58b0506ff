// WebSocket through `node bin/portcullis.js serve` as an operator runs it: WORKERS=2 (each worker
// takes its own upgrades on the shared listener), the tunnel gauge summed over workers, and
// SIGTERM: open tunnels keep working through SHUTDOWN_GRACE_MS, then are closed, exit 0.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedRedis, freePort } from '../helpers/redis.js'
import { CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { WsUpstream } from '../helpers/ws-upstream.js'
import { openWs, nextMessage, closedWithin } from '../helpers/ws-client.js'
import { valueOf } from '../helpers/prometheus.js'
import { spawnServe, exitWithin, waitForOk, killHard, type ServeProcess } from '../helpers/process.js'

const redis = await sharedRedis()
const up = await new WsUpstream().start()
const token = await createTestToken(redis.url)
const running: ServeProcess[] = []
t.teardown(async () => {
  for (const p of running) await killHard(p)
  await up.close()
  await redis.close()
})

t.test('WORKERS=2: tunnels on both workers, gauge summed, SIGTERM closes them after the grace, exit 0', async (t) => {
  const port = await freePort()
  const GRACE = 6000
  const p = spawnServe({
    ...CALM,
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_URL: redis.url,
    LOG_LEVEL: 'info',
    ROUTES: `/ws=${up.url}`,
    WORKERS: '2',
    SHUTDOWN_GRACE_MS: String(GRACE)
  })
  running.push(p)
  const url = `http://127.0.0.1:${port}`
  t.ok(await waitForOk(url + '/healthz', 60_000), 'serve came up') // generous: a loaded CI box starts two workers slowly
  for (let i = 0; i < 600 && (p.stdout().match(/Server listening/g) ?? []).length < 2; i++) await sleep(50)

  const N = 8
  const sockets = await Promise.all(Array.from({ length: N }, async () => await openWs(url, '/ws/x', token.bearer)))
  for (const [i, ws] of sockets.entries()) {
    ws.send(`m${i}`)
    t.equal((await nextMessage(ws)).data.toString(), `m${i}`, `tunnel ${i} echoes`)
  }
  const metrics = await (await fetch(url + '/metrics')).text()
  t.equal(valueOf(metrics, 'portcullis_websocket_connections', { route: '/ws' }), N, 'gauge summed over the workers')
  t.equal(valueOf(metrics, 'portcullis_workers'), 2)

  const signalled = performance.now()
  p.proc.kill('SIGTERM')
  await sleep(GRACE / 2)
  sockets[0]?.send('draining')
  t.equal((await nextMessage(sockets[0] as never)).data.toString(), 'draining', 'still tunnelled during the grace')
  const codes = await Promise.all(sockets.map(async (ws) => await closedWithin(ws, GRACE + 3000)))
  t.notOk(codes.includes(null), 'every tunnel closed')
  t.ok(performance.now() - signalled >= GRACE * 0.7, 'not before the grace was nearly over')
  t.same(await exitWithin(p, GRACE + 5000), { code: 0, signal: null }, 'exit 0: the tunnels were closed in time')
  const lines = p.stdout().split('\n').filter((l) => l.includes('"msg":"request"') && l.includes('"status":101'))
  t.equal(lines.length, N, 'one request line per upgrade')
  const pids = new Set(lines.map((l) => (JSON.parse(l) as { pid: number }).pid))
  t.equal(pids.size, 2, 'both workers took upgrades')
  t.ok(lines.every((l) => l.includes('"closed":"shutdown"')), 'closed by the shutdown')
})
