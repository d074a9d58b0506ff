// What the gateway makes of the upstream's response once its head has arrived (docs/forwarding.md):
// heads without a body pass through, a body that breaks before its first byte is a 502/504, one that
// breaks later aborts the client's response, trailers are forwarded, Via is appended. Upstreams are
// raw sockets writing exact bytes; every upstream fault is checked on the wire, in
// portcullis_upstream_errors_total, in the request log and by the circuit breaker (threshold 1).
import t from 'tap'
import { request } from 'undici'
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { AddressInfo } from 'node:net'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway, CALM } from '../helpers/gateway.js'
import { redisWithToken } from '../helpers/tokens.js'
import { RawConnection, header, json, rawRequest } from '../helpers/raw-http.js'
import { valueOf } from '../helpers/prometheus.js'
import { RELAY_BUFFER_BYTES } from '../../routes/proxy-response.js'

const { redis, token, onEnd } = await redisWithToken()

const KINDS = ['timeout', 'refused', 'reset', 'dns', 'tls', 'protocol']

/** What a raw upstream does on a socket once a request head has arrived (`n` counts requests from 1). */
type Script = (socket: Socket, n: number) => void

/** An upstream on a raw socket: each request head (on any connection) is answered by `script`. */
async function rawUpstream (script: Script): Promise<{ url: string, requests: string[] }> {
  const requests: string[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buf = ''
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1')
      let end: number
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        requests.push(buf.slice(0, end))
        buf = buf.slice(end + 4)
        script(socket, requests.length)
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  onEnd(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

/** A gateway whose route `/api` goes to `upstream`; its breaker opens at the first failure. */
async function gatewayTo (upstream: string, route: Record<string, unknown> = {}): Promise<TestGateway> {
  const routes = JSON.stringify([{ prefix: '/api', upstream, circuitFailureThreshold: 1, circuitCooldownMs: 60_000, ...route }])
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: routes })
  onEnd(async () => { await gw.app.close() })
  return gw
}

/** `GET /api/<path>` with the token, as raw bytes. */
function get (path = 'thing', lines: string[] = [], version = '1.1'): string {
  return `GET /api/${path} HTTP/${version}\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`
}

/** portcullis_upstream_errors_total of `/api` by kind, only the kinds that are not 0. */
async function upstreamErrors (gw: TestGateway): Promise<Record<string, number>> {
  const text = await (await request(gw.url + '/metrics')).body.text()
  const out: Record<string, number> = {}
  for (const kind of KINDS) {
    const v = valueOf(text, 'portcullis_upstream_errors_total', { route: '/api', kind })
    if (v !== 0) out[kind] = v
  }
  out.INTERNAL_ERROR = valueOf(text, 'portcullis_gateway_errors_total', { route: '/api', code: 'INTERNAL_ERROR' })
  return out
}

/** The request log lines' status and upstreamFailure, once `n` lines are there (the line follows the response). */
async function logged (gw: TestGateway, n: number): Promise<Array<{ status: unknown, upstreamFailure: unknown }>> {
  const deadline = performance.now() + 5000
  for (;;) {
    const lines = gw.logs.records().filter((r) => r.msg === 'request' && r.route === '/api')
    if (lines.length >= n || performance.now() > deadline) return lines.map((r) => ({ status: r.status, upstreamFailure: r.upstreamFailure }))
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The breaker's verdict: the next request's code (CIRCUIT_OPEN once a failure was counted at threshold 1). */
async function nextCode (gw: TestGateway): Promise<string | number> {
  const res = await rawRequest(gw.url, get('next'))
  return res.status === 503 ? json(res).code as string : res.status
}

const HEAD_304 = 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 5\r\n\r\n'

t.test('heads that carry no body', async (t) => {
  t.test('a 304 with Content-Length: 5 from Node itself passes through as the 304', async (t) => {
    const up = await new Upstream((_req, res) => { res.writeHead(304, { 'content-length': '5', etag: '"v1"' }); res.end() }).start()
    onEnd(async () => { await up.close() })
    const gw = await gatewayTo(up.url)
    const c = await RawConnection.open(gw.url)
    t.teardown(() => c.close())
    const first = await c.request(get('a', ['If-None-Match: "v1"']))
    t.equal(first.status, 304, first.head)
    t.equal(header(first, 'etag'), '"v1"')
    t.equal(header(first, 'content-length'), '5', 'a 304 may state the length of the representation it stands for')
    t.equal(first.body.length, 0)
    const second = await c.request(get('b'))
    t.equal(second.status, 304, 'the client connection is intact: no stray bytes were sent')
    t.same(await upstreamErrors(gw), { INTERNAL_ERROR: 0 }, 'no upstream failure, no 500')
    t.equal(await nextCode(gw), 304, 'the breaker counted no failure')
  })

  t.test('a 204 with Content-Length: 5 is a 204 without Content-Length', async (t) => {
    const up = await rawUpstream((s) => { s.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\n') })
    const gw = await gatewayTo(up.url)
    const res = await rawRequest(gw.url, get())
    t.equal(res.status, 204, res.head)
    t.equal(header(res, 'x-up'), '1')
    t.equal(header(res, 'content-length'), undefined, 'RFC 9110 section 8.6: no Content-Length on a 204')
    t.same(await upstreamErrors(gw), { INTERNAL_ERROR: 0 })
    t.equal(await nextCode(gw), 204)
  })

  t.test('a 103 Early Hints with Content-Length before the 200 does not break the answer', async (t) => {
    const up = await rawUpstream((s) => {
      s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nContent-Length: 5\r\n\r\n')
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
    const gw = await gatewayTo(up.url)
    const res = await rawRequest(gw.url, get())
    t.equal(res.status, 200, res.head)
    t.equal(res.body.toString(), 'ok')
    t.same(await upstreamErrors(gw), { INTERNAL_ERROR: 0 })
  })

  t.test('a 304 followed by stray body bytes is a 304, never a 500', async (t) => {
    const up = await rawUpstream((s) => { s.write(HEAD_304 + 'hello') })
    const gw = await gatewayTo(up.url)
    const res = await rawRequest(gw.url, get())
    t.equal(res.status, 304, res.head)
    t.equal((await upstreamErrors(gw)).INTERNAL_ERROR, 0)
    t.not(await nextCode(gw), 500)
  })

  t.test('a HEAD request answered with Content-Length and no body', async (t) => {
    const up = await rawUpstream((s) => { s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n') })
    const gw = await gatewayTo(up.url)
    const res = await rawRequest(gw.url, `HEAD /api/x HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`, { head: true })
    t.equal(res.status, 200, res.head)
    t.equal(header(res, 'content-length'), '5')
    t.same(await upstreamErrors(gw), { INTERNAL_ERROR: 0 })
  })
})

t.test('a body that fails before its first byte is a 502 (504), counted, and the upstream\'s head is not passed on', async (t) => {
  const cases: Array<{ name: string, script: Script, status: number, code: string, kind: string, route?: Record<string, unknown> }> = [
    {
      name: 'head, then reset',
      script: (s) => { s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nSet-Cookie: s=1\r\nX-Up: 1\r\n\r\n', () => { s.resetAndDestroy() }) },
      status: 502,
      code: 'UPSTREAM_ERROR',
      kind: 'reset'
    },
    {
      name: 'chunked head, then reset',
      script: (s) => { s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: s=1\r\nX-Up: 1\r\n\r\n', () => { s.resetAndDestroy() }) },
      status: 502,
      code: 'UPSTREAM_ERROR',
      kind: 'reset'
    },
    {
      name: 'head, then an invalid chunk size (one packet)',
      script: (s) => { s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: s=1\r\nX-Up: 1\r\n\r\nzz\r\nhello\r\n') },
      status: 502,
      code: 'UPSTREAM_ERROR',
      kind: 'protocol'
    },
    {
      // Up to RELAY_BUFFER_BYTES a sized body is gathered before anything is sent: cut short, it is a clean 502.
      name: 'Content-Length: 100 (gathered), closed after 5 bytes',
      script: (s) => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nSet-Cookie: s=1\r\nX-Up: 1\r\n\r\nhello')
        setTimeout(() => { s.end() }, 100)
      },
      status: 502,
      code: 'UPSTREAM_ERROR',
      kind: 'reset'
    },
    {
      name: 'head, then nothing for longer than the route timeout',
      script: (s) => { s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nSet-Cookie: s=1\r\nX-Up: 1\r\n\r\n') },
      status: 504,
      code: 'UPSTREAM_TIMEOUT',
      kind: 'timeout',
      route: { timeoutMs: 300 }
    }
  ]
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const up = await rawUpstream(c.script)
      const gw = await gatewayTo(up.url, c.route)
      const res = await rawRequest(gw.url, get())
      t.equal(res.status, c.status, res.head)
      t.match(json(res), { statusCode: c.status, code: c.code })
      t.match(header(res, 'content-type'), /^application\/json/)
      t.equal(res.headers['set-cookie'], undefined, 'the upstream\'s headers are not on the gateway\'s answer')
      t.equal(res.headers['x-up'], undefined)
      t.equal(res.headers['content-length']?.[0], String(res.body.length))
      t.ok(header(res, 'x-request-id'), 'the gateway\'s own headers are')
      t.same(await upstreamErrors(gw), { [c.kind]: 1, INTERNAL_ERROR: 0 })
      t.same(await logged(gw, 1), [{ status: c.status, upstreamFailure: c.kind }])
      t.equal(await nextCode(gw), 'CIRCUIT_OPEN', 'the breaker counted the failure')
      t.equal(up.requests.length, 1)
    })
  }
})

t.test('a body that fails after bytes were sent aborts the client\'s response, counted', async (t) => {
  const cases: Array<{ name: string, script: Script, kind: string, route?: Record<string, unknown> }> = [
    {
      name: 'chunked, reset after a chunk',
      script: (s) => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
        setTimeout(() => { s.resetAndDestroy() }, 100)
      },
      kind: 'reset'
    },
    {
      name: 'chunked, an invalid chunk size after a chunk',
      script: (s) => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
        setTimeout(() => { s.write('zz\r\n') }, 100)
      },
      kind: 'protocol'
    },
    {
      name: 'chunked, a chunk and an invalid chunk size in one packet',
      script: (s) => { s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n') },
      kind: 'protocol'
    },
    {
      name: 'chunked, a chunk, then nothing for longer than the route timeout',
      script: (s) => { s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n') },
      kind: 'timeout',
      route: { timeoutMs: 300 }
    },
    {
      name: `Content-Length above ${RELAY_BUFFER_BYTES} (streamed), closed after 5 bytes`,
      script: (s) => {
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${RELAY_BUFFER_BYTES + 1}\r\n\r\nhello`)
        setTimeout(() => { s.end() }, 100)
      },
      kind: 'reset'
    }
  ]
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const up = await rawUpstream(c.script)
      const gw = await gatewayTo(up.url, c.route)
      const conn = await RawConnection.open(gw.url)
      t.teardown(() => conn.close())
      const chunks: Buffer[] = []
      conn.socket.on('data', (b: Buffer) => chunks.push(b))
      await t.rejects(conn.request(get()), /connection closed before a complete response/, 'never a clean end')
      const wire = Buffer.concat(chunks).toString('latin1')
      t.match(wire, /^HTTP\/1\.1 200 OK\r\n/, 'the response had started')
      t.match(wire, /hello/)
      t.notMatch(wire, /\r\n0\r\n\r\n$/, 'no terminating chunk')
      t.same(await upstreamErrors(gw), { [c.kind]: 1, INTERNAL_ERROR: 0 })
      t.same(await logged(gw, 1), [{ status: 200, upstreamFailure: c.kind }], 'the request line says which failure')
      t.equal(await nextCode(gw), 'CIRCUIT_OPEN', 'the breaker counted the failure')
    })
  }
})

t.test('the route timeout between response body chunks restarts with each chunk: a slow, steady body is relayed whole', async (t) => {
  // 12 chunks 100 ms apart (1.1 s in all) under a 300 ms route timeout, gathered and streamed alike.
  for (const [name, head] of [['chunked (streamed)', 'Transfer-Encoding: chunked'], ['Content-Length: 12 (gathered)', 'Content-Length: 12']] as const) {
    t.test(name, async (t) => {
      const chunked = head.startsWith('Transfer')
      const up = await rawUpstream((s) => {
        s.write(`HTTP/1.1 200 OK\r\n${head}\r\n\r\n`)
        let i = 0
        const timer = setInterval(() => {
          i++
          s.write(chunked ? '1\r\nx\r\n' : 'x')
          if (i === 12) {
            clearInterval(timer)
            if (chunked) s.write('0\r\n\r\n')
          }
        }, 100)
        s.once('close', () => { clearInterval(timer) })
      })
      const gw = await gatewayTo(up.url, { timeoutMs: 300 })
      const started = performance.now()
      const res = await rawRequest(gw.url, get())
      t.equal(res.status, 200)
      t.equal(res.body.toString(), 'x'.repeat(12), 'every byte, and a clean end')
      t.ok(performance.now() - started > 1000, 'it took longer than three route timeouts')
      t.same(await upstreamErrors(gw), { INTERNAL_ERROR: 0 })
      t.same(await logged(gw, 1), [{ status: 200, upstreamFailure: undefined }])
    })
  }
})

t.test('a client that leaves while the body is awaited is no upstream failure', async (t) => {
  let upstreamSocket: Socket | null = null
  const up = await rawUpstream((s, n) => {
    if (n === 1) { upstreamSocket = s; s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'); return }
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  })
  const gw = await gatewayTo(up.url)
  const conn = await RawConnection.open(gw.url)
  conn.socket.write(get())
  const deadline = performance.now() + 5000
  while (up.requests.length === 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setTimeout(resolve, 50)) // the head reached the gateway
  conn.close()
  const closed = await new Promise<boolean>((resolve) => {
    const s = upstreamSocket as Socket | null
    if (s === null) { resolve(false); return }
    const timer = setTimeout(() => resolve(false), 5000)
    s.once('close', () => { clearTimeout(timer); resolve(true) })
  })
  t.ok(closed, 'the upstream request is abandoned with the client')
  t.same(await upstreamErrors(gw), { INTERNAL_ERROR: 0 })
  t.equal(await nextCode(gw), 200, 'the breaker counted no failure')
})

t.test('trailers', async (t) => {
  const CHUNKED = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n'
  const upstream = async (): Promise<{ url: string }> => await rawUpstream((s) => {
    s.write(CHUNKED + 'Trailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc123\r\nX-Unannounced: yes\r\n\r\n')
  })

  t.test('announced and unannounced trailers reach an HTTP/1.1 client, with the Trailer header', async (t) => {
    const gw = await gatewayTo((await upstream()).url)
    const conn = await RawConnection.open(gw.url)
    t.teardown(() => conn.close())
    const chunks: Buffer[] = []
    conn.socket.on('data', (b: Buffer) => chunks.push(b))
    const res = await conn.request(get())
    t.equal(res.status, 200, res.head)
    t.equal(res.body.toString(), 'hello')
    t.equal(header(res, 'trailer'), 'X-Checksum')
    t.equal(header(res, 'transfer-encoding'), 'chunked')
    const wire = Buffer.concat(chunks).toString('latin1')
    t.match(wire, /\r\n0\r\nx-checksum: abc123\r\nx-unannounced: yes\r\n\r\n$/i, 'the trailer section after the last chunk')
    const second = await conn.request(get())
    t.equal(second.body.toString(), 'hello', 'the connection stays usable after a trailer section')
    t.same(await upstreamErrors(gw), { INTERNAL_ERROR: 0 })
  })

  t.test('curl --raw shows them', async (t) => {
    const gw = await gatewayTo((await upstream()).url)
    const { stdout } = await promisify(execFile)('curl', ['-sS', '--raw', '-i', '-H', `Authorization: ${token.bearer}`, gw.url + '/api/curl'])
    t.match(stdout, /^trailer: X-Checksum\r$/im)
    t.match(stdout, /\r\n0\r\nx-checksum: abc123\r\nx-unannounced: yes\r\n/i)
  })

  t.test('an HTTP/1.0 client gets the body without trailers or a Trailer header', async (t) => {
    const gw = await gatewayTo((await upstream()).url)
    const res = await rawRequest(gw.url, get('old', [], '1.0'))
    t.equal(res.status, 200, res.head)
    t.equal(res.body.toString(), 'hello')
    t.equal(res.headers.trailer, undefined, 'Node would refuse a Trailer header on an unchunked response')
    t.same(await upstreamErrors(gw), { INTERNAL_ERROR: 0 })
  })

  t.test('a Trailer header on a response with Content-Length is not passed on', async (t) => {
    const up = await rawUpstream((s) => { s.write('HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nContent-Length: 2\r\n\r\nok') })
    const gw = await gatewayTo(up.url)
    const res = await rawRequest(gw.url, get())
    t.equal(res.status, 200, res.head)
    t.equal(res.body.toString(), 'ok')
    t.equal(res.headers.trailer, undefined)
  })

  t.test('hop-by-hop trailer fields are dropped', async (t) => {
    const up = await rawUpstream((s) => {
      s.write(CHUNKED + '\r\n2\r\nok\r\n0\r\nConnection: close\r\nX-Kept: 1\r\n\r\n')
    })
    const gw = await gatewayTo(up.url)
    const conn = await RawConnection.open(gw.url)
    t.teardown(() => conn.close())
    const chunks: Buffer[] = []
    conn.socket.on('data', (b: Buffer) => chunks.push(b))
    await conn.request(get())
    t.match(Buffer.concat(chunks).toString('latin1'), /\r\n0\r\nx-kept: 1\r\n\r\n$/i)
  })
})

t.test('Via', async (t) => {
  const up = await new Upstream((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', via: '1.1 backend-cache' })
    res.end(JSON.stringify({ via: req.headers.via }))
  }).start()
  onEnd(async () => { await up.close() })
  const gw = await gatewayTo(up.url)

  t.test('is appended on the request and on the response', async (t) => {
    const res = await rawRequest(gw.url, get())
    t.same(json(res), { via: '1.1 portcullis' })
    t.equal(header(res, 'via'), '1.1 backend-cache, 1.1 portcullis')
  })
  t.test('after the client\'s own Via', async (t) => {
    const res = await rawRequest(gw.url, get('x', ['Via: 1.0 fred, 1.1 p.example (Apache/1.1)']))
    t.same(json(res), { via: '1.0 fred, 1.1 p.example (Apache/1.1), 1.1 portcullis' })
  })
  t.test('with the version the client spoke', async (t) => {
    const res = await rawRequest(gw.url, get('x', [], '1.0'))
    t.same(json(res), { via: '1.0 portcullis' })
  })
  t.test('never the host name', async (t) => {
    const res = await rawRequest(gw.url, get())
    t.notMatch(header(res, 'via') ?? '', /127\.0\.0\.1|localhost/)
  })
})
