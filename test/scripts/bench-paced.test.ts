// The bench's paced load (scripts/bench-paced.ts): requests leave evenly spread in time, not in a
// burst at the top of each second (autocannon's overallRate), and a request's latency runs from
// its due time, so a slow server is charged for the requests queued behind it.
import { test, type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { pacedLoad, quantile, readAnswer } from '../../scripts/bench-paced.js'

async function server (t: Test, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const s = createServer(handler)
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  t.teardown(async () => { s.closeAllConnections(); await new Promise((resolve) => s.close(resolve)) })
  return (s.address() as AddressInfo).port
}

const BODY = '{"ok":true}'

test('readAnswer: whole answers only, Content-Length required', async (t) => {
  t.equal(readAnswer(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n')), null, 'head not complete')
  t.equal(readAnswer(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\na')), null, 'body not complete')
  const a = readAnswer(Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length:  2\r\n\r\nab'))
  t.same(a && { status: a.status, body: a.body.toString(), length: a.length }, { status: 404, body: 'ab', length: 48 })
  const extra = readAnswer(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nxy'))
  t.equal(extra?.length, 39, 'the length of the first answer, the stray byte left over')
  t.throws(() => readAnswer(Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n')), /without Content-Length/)
  t.throws(() => readAnswer(Buffer.from('SSH-2.0\r\n\r\n')), /not an HTTP/)
})

test('quantile: nearest rank', async (t) => {
  const xs = Float64Array.from({ length: 100 }, (_, i) => i + 1)
  t.equal(quantile(xs, 0.5), 50)
  t.equal(quantile(xs, 0.99), 99)
  t.equal(quantile(xs, 1), 100)
  t.equal(quantile(xs, 0), 1)
  t.equal(quantile(new Float64Array(0), 0.99), 0)
})

test('requests are spread over the second, not sent in a burst at its start', async (t) => {
  const arrivals: number[] = []
  let start = 0
  const port = await server(t, (req, res) => {
    arrivals.push(performance.now() - start)
    req.resume()
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(BODY.length) })
    res.end(BODY)
  })
  start = performance.now()
  const r = await pacedLoad({ port, path: '/x?y=1', headers: { authorization: 'Bearer k' }, expectBody: BODY, rate: 400, seconds: 1, connections: 20 })
  t.equal(r.sent, 400)
  t.equal(r.completed, 400)
  t.equal(r.non2xx + r.errors + r.timeouts + r.mismatches, 0)
  // Evenly spread: ~100 in each quarter second (wide bounds). autocannon's overallRate sends all
  // 400 within the first few milliseconds.
  const inFirstQuarter = arrivals.filter((ms) => ms < 250).length
  const inSecondHalf = arrivals.filter((ms) => ms >= 500).length
  t.ok(inFirstQuarter <= 160, `first quarter second: ${inFirstQuarter} of 400`)
  t.ok(inSecondHalf >= 140, `second half: ${inSecondHalf} of 400`)
  t.ok(r.latency.p50 > 0 && r.latency.p50 <= r.latency.p99 && r.latency.p99 <= r.latency.max)
  t.ok(r.duration >= 0.9 && r.duration < 5, `duration ${r.duration} s`)
})

test('latency runs from the due time: requests queued behind a slow answer count their wait', async (t) => {
  const port = await server(t, (req, res) => {
    req.resume()
    setTimeout(() => {
      res.writeHead(200, { 'content-length': String(BODY.length) })
      res.end(BODY)
    }, 50)
  })
  // One connection, 40 requests due in 0.4 s, each answered after 50 ms: the last is answered ~2 s
  // after the first was due, ~1.6 s after its own due time.
  const r = await pacedLoad({ port, path: '/', headers: {}, expectBody: BODY, rate: 100, seconds: 0.4, connections: 1 })
  t.equal(r.completed, 40)
  t.ok(r.latency.max > 1000, `max ${r.latency.max} ms`)
  t.ok(r.latency.p50 > 400, `p50 ${r.latency.p50} ms`)
})

test('non-2xx, wrong bodies and dropped connections are counted, not hidden', async (t) => {
  let n = 0
  const port = await server(t, (req, res) => {
    req.resume()
    n++
    if (n % 10 === 0) { req.socket.destroy(); return }
    const body = n % 10 === 5 ? '{"ok":fals}' : BODY
    res.writeHead(n % 10 === 3 ? 503 : 200, { 'content-length': String(body.length) })
    res.end(body)
  })
  const r = await pacedLoad({ port, path: '/', headers: {}, expectBody: BODY, rate: 200, seconds: 0.5, connections: 5 })
  t.equal(r.sent, 100)
  t.equal(r.errors, 10, 'each destroyed connection lost its request')
  t.equal(r.non2xx, 10)
  t.equal(r.mismatches, 10)
  t.equal(r.completed, 90)
  t.equal(r.timeouts, 0)
})

test('a warm-up runs on the same connections without a pause and stays out of the latencies', async (t) => {
  const sockets = new Set<unknown>()
  let n = 0
  const port = await server(t, (req, res) => {
    sockets.add(req.socket)
    req.resume()
    n++
    // The first 20 answers (the warm-up's 0.2 s at 100 req/s) are slow, as a cold server's are.
    setTimeout(() => {
      res.writeHead(200, { 'content-length': String(BODY.length) })
      res.end(BODY)
    }, n <= 20 ? 150 : 0)
  })
  const r = await pacedLoad({ port, path: '/', headers: {}, expectBody: BODY, rate: 100, warmupSeconds: 0.2, seconds: 0.5, connections: 20 })
  t.equal(r.sent, 70, 'warm-up and measured requests are all sent')
  t.equal(r.completed, 70)
  t.equal(r.measured, 50, 'only the 50 requests due after the warm-up are measured')
  t.equal(r.non2xx + r.errors + r.timeouts + r.mismatches, 0)
  t.ok(sockets.size <= 20, `${sockets.size} connections: the measured requests use the warm-up's, no new ones`)
  // The slow warm-up answers (150 ms, each on a connection of its own: the first frees its
  // connection before the warm-up ends) are not in the latencies (wide bounds).
  t.ok(r.latency.p50 < 75, `p50 ${r.latency.p50} ms`)
  t.ok(r.latency.max < 140, `max ${r.latency.max} ms`)
  t.ok(r.duration >= 0.4 && r.duration < 3, `duration ${r.duration} s, from the first measured due time`)
})
