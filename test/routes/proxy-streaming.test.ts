// Bodies stream both ways (docs/forwarding.md): 50 MB each way with length and SHA-256 checked at the far
// end, proof that bytes move before the sender has finished, and client disconnects that abort
// the upstream exchange.
import t from 'tap'
import { request } from 'undici'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { RawConnection } from '../helpers/raw-http.js'

const MB = 1024 * 1024
const TOTAL = 50 * MB
const CHUNK = 64 * 1024
const BLOCK = randomBytes(CHUNK)

/** Chunk `i` of a generated body: a random block stamped with its index, so order matters. */
function chunk (i: number): Buffer {
  const c = Buffer.from(BLOCK)
  c.writeUInt32BE(i, 0)
  return c
}

/** SHA-256 of the first `count` generated chunks, computed without keeping them. */
function expectedSha (count: number): string {
  const h = createHash('sha256')
  for (let i = 0; i < count; i++) h.update(chunk(i))
  return h.digest('hex')
}

/** A one-shot signal with a deadline: resolves true when fired, false when `ms` passed first. */
function signal (): { fire: () => void, wait: (ms: number) => Promise<boolean> } {
  let fire = (): void => {}
  const fired = new Promise<true>((resolve) => { fire = () => resolve(true) })
  return { fire: () => fire(), wait: async (ms) => await Promise.race([fired, sleep(ms, false, { ref: false })]) }
}

const redis = await sharedRedis()
const up = await new Upstream((_req, res, seen) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ bytes: seen.bodyBytes, sha256: seen.bodySha256 }))
}).start()
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/files=${up.url}` })
const token = await createTestToken(redis.url)
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
})
const CHUNKS = TOTAL / CHUNK
const SHA = expectedSha(CHUNKS)

t.test('a 50 MB upload with Content-Length arrives whole and unchanged', async (t) => {
  up.onStart = null
  const started = performance.now()
  const res = await request(gw.url + '/api/v1/files/upload', {
    method: 'PUT',
    headers: { authorization: token.bearer, 'content-type': 'application/octet-stream', 'content-length': String(TOTAL) },
    body: Readable.from((function * () { for (let i = 0; i < CHUNKS; i++) yield chunk(i) })())
  })
  const body = await res.body.json() as { bytes: number, sha256: string }
  const ms = performance.now() - started
  t.equal(res.statusCode, 200)
  t.same(body, { bytes: TOTAL, sha256: SHA }, 'the upstream got every byte, in order')
  t.equal(up.last().headers['content-length'], String(TOTAL), 'the length is passed on')
  t.comment(`50 MB upload through the gateway: ${Math.round(ms)} ms`)
})

t.test('an upload streams: the upstream reads the first half before the client sends the second', async (t) => {
  const firstBytes = signal()
  up.onStart = (req) => { req.once('data', () => firstBytes.fire()) }
  t.teardown(() => { up.onStart = null })
  let upstreamHadBytesMidway = false
  const body = async function * (): AsyncGenerator<Buffer> {
    for (let i = 0; i < CHUNKS / 2; i++) yield chunk(i)
    // If the gateway buffered the body, this would only fire after the end: give up after 20 s.
    upstreamHadBytesMidway = await firstBytes.wait(20_000)
    for (let i = CHUNKS / 2; i < CHUNKS; i++) yield chunk(i)
  }
  const res = await request(gw.url + '/api/v1/files/chunked', {
    method: 'POST',
    headers: { authorization: token.bearer, 'content-type': 'application/octet-stream' },
    body: Readable.from(body())
  })
  t.equal(res.statusCode, 200)
  t.same(await res.body.json(), { bytes: TOTAL, sha256: SHA })
  t.ok(upstreamHadBytesMidway, 'the upstream received body bytes while the client had sent only half')
  t.equal(up.last().headers['transfer-encoding'], 'chunked', 'a chunked upload stays chunked')
})

t.test('a 50 MB download arrives whole, and streams', async (t) => {
  const clientGotBytes = signal()
  let streamedBeforeEnd = false
  const source = await new Upstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(TOTAL) })
    const body = async function * (): AsyncGenerator<Buffer> {
      for (let i = 0; i < CHUNKS / 2; i++) yield chunk(i)
      streamedBeforeEnd = await clientGotBytes.wait(20_000)
      for (let i = CHUNKS / 2; i < CHUNKS; i++) yield chunk(i)
    }
    pipeline(Readable.from(body()), res).catch(() => {})
  }).start()
  const g = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/files=${source.url}` })
  t.teardown(async () => { await g.app.close(); await source.close() })
  const started = performance.now()
  const res = await request(g.url + '/api/v1/files/big.bin', { headers: { authorization: token.bearer } })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-length'], String(TOTAL))
  const hash = createHash('sha256')
  let bytes = 0
  for await (const part of res.body) {
    bytes += (part as Buffer).length
    hash.update(part as Buffer)
    clientGotBytes.fire()
  }
  const ms = performance.now() - started
  t.equal(bytes, TOTAL)
  t.equal(hash.digest('hex'), SHA, 'every byte, in order')
  t.ok(streamedBeforeEnd, 'the client read bytes before the upstream had written the second half')
  t.comment(`50 MB download through the gateway: ${Math.round(ms)} ms`)
})

/** Follows one upstream request: which of data/end/close happened, and in which order. */
function watch (req: IncomingMessage, res: ServerResponse): { events: string[], bytes: () => number, closed: Promise<void> } {
  const events: string[] = []
  let bytes = 0
  req.on('data', (c: Buffer) => { bytes += c.length })
  req.once('end', () => events.push('end'))
  req.once('aborted', () => events.push('aborted'))
  const closed = new Promise<void>((resolve) => {
    req.once('close', () => { events.push(req.complete ? 'close(complete)' : 'close(incomplete)'); resolve() })
    res.once('close', () => { events.push(res.writableFinished ? 'res-close(finished)' : 'res-close(unfinished)'); resolve() })
  })
  return { events, bytes: () => bytes, closed }
}

t.test('a client that disconnects mid-upload aborts the upstream request', async (t) => {
  let watched: ReturnType<typeof watch> | null = null
  const gotBytes = signal()
  up.onStart = (req, res) => { watched = watch(req, res); req.once('data', () => gotBytes.fire()) }
  t.teardown(() => { up.onStart = null })
  const seenBefore = up.seen.length
  const c = await RawConnection.open(gw.url)
  c.socket.write(`PUT /api/v1/files/partial HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n` +
    `Content-Type: application/octet-stream\r\nContent-Length: ${10 * MB}\r\n\r\n`)
  for (let i = 0; i < 16; i++) c.socket.write(chunk(i)) // 1 MB of the announced 10
  t.ok(await gotBytes.wait(10_000), 'the upstream started receiving the body')
  c.close()
  const w = watched as ReturnType<typeof watch> | null
  if (w === null) throw new Error('upstream saw no request')
  const aborted = await Promise.race([w.closed.then(() => true), sleep(5000, false)])
  t.ok(aborted, 'the upstream request was closed within 5 s of the client leaving')
  t.notOk(w.events.includes('end'), `the upstream body never ended normally (${w.events.join(', ')})`)
  t.ok(w.bytes() < 10 * MB, `the upstream got only part of the body (${w.bytes()} bytes)`)
  t.equal(up.seen.length, seenBefore, 'the upstream handler never saw a complete request')
})

t.test('a client that disconnects mid-download aborts the upstream response', async (t) => {
  let watched: ReturnType<typeof watch> | null = null
  const slow = await new Upstream((req, res) => {
    watched = watch(req, res)
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    const timer = setInterval(() => { res.write(chunk(0)) }, 20) // forever, until the write side closes
    res.once('close', () => clearInterval(timer))
  }).start()
  const g = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/api/v1/files=${slow.url}` })
  t.teardown(async () => { await g.app.close(); await slow.close() })
  const c = await RawConnection.open(g.url)
  c.socket.write(`GET /api/v1/files/endless HTTP/1.1\r\nHost: x\r\nAuthorization: ${token.bearer}\r\n\r\n`)
  await new Promise((resolve) => c.socket.once('data', resolve))
  c.close()
  await sleep(50)
  const w = watched as ReturnType<typeof watch> | null
  if (w === null) throw new Error('upstream saw no request')
  const closed = await Promise.race([w.closed.then(() => true), sleep(5000, false)])
  t.ok(closed, 'the upstream connection was closed within 5 s of the client leaving')
  // The request's and the response's 'close' come from the same socket close, in either order.
  for (let i = 0; i < 50 && !w.events.some((e) => e.startsWith('res-close')); i++) await sleep(20)
  t.ok(w.events.includes('res-close(unfinished)'), `the upstream response was cut off (${w.events.join(', ')})`)
})
