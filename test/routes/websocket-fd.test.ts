// 1000 tunnels that end abruptly (half the clients vanish, half the upstreams drop) leave no file
// descriptor behind: the fd count of this process (gateway, upstream and clients all live here)
// is measured from /proc/self/fd before and after.
import t from 'tap'
import { readdirSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { sharedRedis } from '../helpers/redis.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { WsUpstream } from '../helpers/ws-upstream.js'
import { rawHandshake } from '../helpers/ws-client.js'
import { valueOf } from '../helpers/prometheus.js'
import { until } from '../helpers/until.js'

const TOTAL = 1000
const BATCH = 50
const redis = await sharedRedis()
const up = await new WsUpstream().start()
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/ws=${up.url}` })
const token = await createTestToken(redis.url)
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
})

const fds = (): number => readdirSync('/proc/self/fd').length
const port = Number(new URL(gw.url).port)
const handshake = rawHandshake('/ws/fd', [`Authorization: ${token.bearer}`])

/** Opens a tunnel with a raw socket and resolves once the 101 head has arrived. */
async function tunnel (): Promise<Socket> {
  const s = connect(port, '127.0.0.1')
  s.on('error', () => {})
  await once(s, 'connect')
  s.write(handshake)
  let head = ''
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = await once(s, 'data') as [Buffer]
    head += chunk.toString('latin1')
  }
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`not a 101: ${head.slice(0, 40)}`)
  return s
}

async function settled (): Promise<void> {
  const closed = async (): Promise<boolean> =>
    valueOf(await gw.app.metrics.registry.metrics(), 'portcullis_websocket_connections', { route: '/ws' }) === 0 && up.openConnections === 0
  if (!await until(closed, 20_000, 50)) throw new Error('tunnels did not close')
}

t.test(`${TOTAL} abrupt closes leave the fd count flat`, async (t) => {
  // Warm up (Redis connection, script load, lazily opened fds), then measure.
  ;(await tunnel()).destroy()
  await settled()
  const before = fds()
  for (let done = 0; done < TOTAL; done += BATCH) {
    const sockets = await Promise.all(Array.from({ length: BATCH }, tunnel))
    if ((done / BATCH) % 2 === 0) {
      for (const s of sockets) s.resetAndDestroy() // the client vanishes (RST)
    } else {
      for (const ws of up.sockets) ws.terminate() // the upstream drops every connection
      await Promise.all(sockets.map(async (s) => { if (!s.closed) await once(s, 'close') }))
    }
  }
  await settled()
  const after = fds()
  t.ok(after - before <= 5, `fd count flat: ${before} before, ${after} after ${TOTAL} tunnels`)
  const text = await gw.app.metrics.registry.metrics()
  const closed = ['client_closed', 'upstream_closed', 'error'].reduce((sum, reason) =>
    sum + valueOf(text, 'portcullis_websocket_closed_total', { route: '/ws', reason }), 0)
  t.equal(closed, TOTAL + 1, 'every tunnel counted closed once')
})
