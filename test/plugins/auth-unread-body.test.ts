// A request refused before the token check (or by it) never has its body read: a 100 MB upload
// is answered at once with Connection: close, long before the client could have sent it.
import t from 'tap'
import { once } from 'node:events'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { CALM, startGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection, header, json, type RawResponse } from '../helpers/raw-http.js'

const redis = await sharedRedis()
const up = await new Upstream().start()
const forbidden = await createTestToken(redis.url, { allowed_routes: ['/api/v1/products/*'] })
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/users=${up.url}` })
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
})

const TOTAL = 100 * 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 'a')

interface Upload { res: RawResponse, written: number, flushed: number, ms: number, closed: boolean }

/**
 * Sends a request head announcing a 100 MB body, then streams the body in 64 KiB chunks as fast as
 * the socket takes them, until the response arrives. `written` counts bytes handed to the socket,
 * `flushed` those the kernel accepted, both at the moment the response was complete.
 */
async function upload (head: string): Promise<Upload> {
  const c = await RawConnection.open(gw.url)
  const started = Date.now()
  let written = 0
  let flushed = 0
  const state = { answered: false }
  const response = c.response().finally(() => { state.answered = true })
  const pump = (async () => {
    c.socket.write(head)
    while (!state.answered && !c.closed && !c.socket.destroyed && written < TOTAL) {
      written += CHUNK.length
      const more = c.socket.write(CHUNK, (err) => { if (err == null) flushed += CHUNK.length })
      if (!more) {
        await Promise.race([once(c.socket, 'drain'), once(c.socket, 'close'), response.catch(() => {})])
      }
    }
  })()
  const res = await response
  const at = { written, flushed, ms: Date.now() - started }
  const closed = await c.waitClosed(10_000)
  await pump
  c.close()
  return { res, ...at, closed }
}

const cases: Array<[string, string, number, string]> = [
  ['no token', '', 401, 'TOKEN_MISSING'],
  ['an unknown token', 'Authorization: Bearer pc_unknownunknownunknownunknown00\r\n', 401, 'TOKEN_INVALID'],
  ['a forbidden route', `Authorization: ${forbidden.bearer}\r\n`, 403, 'ROUTE_FORBIDDEN'],
  ['an unrouted path', '', 404, 'ROUTE_NOT_FOUND']
]

for (const [label, auth, status, code] of cases) {
  t.test(`a 100 MB upload with ${label} is refused before its body is read`, async (t) => {
    const target = status === 404 ? '/elsewhere' : '/api/v1/users/upload'
    const u = await upload(`POST ${target} HTTP/1.1\r\nHost: gw.test\r\n${auth}Content-Type: application/octet-stream\r\nContent-Length: ${TOTAL}\r\n\r\n`)
    t.comment(`${label}: answered after ${u.ms} ms, ${(u.written / 1048576).toFixed(1)} MiB written, ${(u.flushed / 1048576).toFixed(1)} MiB flushed`)
    t.equal(u.res.status, status, u.res.head)
    t.equal(json(u.res).code, code)
    t.equal(header(u.res, 'connection'), 'close', 'the gateway closes instead of draining the body')
    t.ok(u.written < 32 * 1024 * 1024, `answered when only ${u.written} of ${TOTAL} bytes were written`)
    t.ok(u.ms < 15_000, 'answered in seconds')
    t.ok(u.closed, 'and the connection was closed')
    t.equal(up.started, 0, 'the upstream saw nothing')
  })
}

t.test('a small upload with a valid token still streams through (the refusals above are not a broken upload path)', async (t) => {
  const ok = await createTestToken(redis.url, { allowed_routes: ['/api/v1/users/*'] })
  const c = await RawConnection.open(gw.url)
  t.teardown(() => c.close())
  const body = Buffer.alloc(1024 * 1024, 'b')
  c.socket.write(`POST /api/v1/users/upload HTTP/1.1\r\nHost: gw.test\r\nAuthorization: ${ok.bearer}\r\nContent-Length: ${body.length}\r\n\r\n`)
  c.socket.write(body)
  const res = await c.response()
  t.equal(res.status, 200, res.head)
  t.equal(up.last().bodyBytes, body.length)
})
