// The client body idle guard over real streams: bytes pass unchanged, silence trips it, a trickle
// faster than the timeout does not, upstream backpressure stops the clock, an early end aborts.
import { test } from 'tap'
import { PassThrough, Writable } from 'node:stream'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { guardBody, CLIENT_BODY_IDLE, CLIENT_BODY_ABORTED } from '../../src/lib/body-idle.js'

/** Reads everything from `s`; resolves with the bytes or rejects with its error. */
async function collect (s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const chunk of s) parts.push(chunk as Buffer)
  return Buffer.concat(parts)
}

test('the bytes pass unchanged and the end is passed on; the timer never fires', async (t) => {
  const source = new PassThrough()
  let idle = 0
  const out = guardBody(source, 100, () => { idle++ })
  const read = collect(out)
  const payload = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251))
  source.write(payload.subarray(0, 40_000))
  source.end(payload.subarray(40_000))
  t.same(await read, payload)
  await sleep(200)
  t.equal(idle, 0)
})

test('no byte for idleMs: onIdle once, then the stream is destroyed with CLIENT_BODY_IDLE; the source is not destroyed', async (t) => {
  const source = new PassThrough()
  let idle = 0
  const started = performance.now()
  const out = guardBody(source, 150, () => { idle++ })
  source.write('first')
  const err = await collect(out).then(() => null, (e: Error & { code?: string }) => e)
  const ms = performance.now() - started
  t.equal(err?.code, CLIENT_BODY_IDLE)
  t.equal(idle, 1)
  t.ok(ms >= 120 && ms < 3000, `after about 150 ms (${Math.round(ms)})`)
  t.equal(source.destroyed, false, 'the caller still answers on the client socket')
  source.write('late')
  await sleep(50)
  t.equal(idle, 1, 'never twice')
})

test('a trickle faster than the timeout keeps it alive', async (t) => {
  const source = new PassThrough()
  let idle = 0
  const out = guardBody(source, 200, () => { idle++ })
  const read = collect(out)
  for (let i = 0; i < 6; i++) { source.write('x'); await sleep(60) } // 360 ms in all, gaps of 60 ms
  source.end()
  t.equal((await read).toString(), 'xxxxxx')
  t.equal(idle, 0)
})

test('while the reader applies backpressure the clock stops: a slow upstream is not the client\'s fault', async (t) => {
  const source = new PassThrough()
  let idle = 0
  const out = guardBody(source, 150, () => { idle++ })
  // The client sends far more than the buffers hold, at once; nobody reads `out` for 500 ms.
  const big = Buffer.alloc(1024 * 1024, 1)
  source.end(big)
  await sleep(500)
  t.equal(idle, 0, 'waiting on the reader is not idleness')
  t.equal((await collect(out)).length, big.length)
  t.equal(idle, 0)
})

test('the source closing before its end destroys the stream with CLIENT_BODY_ABORTED', async (t) => {
  const source = new PassThrough()
  let idle = 0
  const out = guardBody(source, 1000, () => { idle++ })
  const read = collect(out).then(() => null, (e: Error & { code?: string }) => e)
  source.write('part')
  await sleep(20)
  source.destroy()
  t.equal((await read)?.code, CLIENT_BODY_ABORTED)
  t.equal(idle, 0)
})

test('the reader going away stops the timer and leaves the source alone', async (t) => {
  const source = new PassThrough()
  let idle = 0
  const out = guardBody(source, 100, () => { idle++ })
  out.destroy()
  await once(out, 'close')
  await sleep(250)
  t.equal(idle, 0)
  t.equal(source.destroyed, false)
})

test('an already ended or already destroyed source', async (t) => {
  const ended = new PassThrough()
  ended.end('x')
  ended.resume()
  await once(ended, 'end')
  t.equal((await collect(guardBody(ended, 50, () => t.fail('no idle')))).length, 0)

  const gone = new PassThrough()
  gone.destroy()
  const err = await collect(guardBody(gone, 50, () => t.fail('no idle'))).then(() => null, (e: Error & { code?: string }) => e)
  t.equal(err?.code, CLIENT_BODY_ABORTED)
})

test('piped into a writable that reads slowly, every byte arrives in order', async (t) => {
  const source = new PassThrough()
  const out = guardBody(source, 300, () => t.fail('no idle'))
  const got: Buffer[] = []
  const sink = new Writable({
    highWaterMark: 1024,
    write (chunk: Buffer, _enc, cb) { got.push(chunk); setTimeout(cb, 1) }
  })
  out.pipe(sink)
  for (let i = 0; i < 50; i++) source.write(Buffer.alloc(4096, i))
  source.end()
  await once(sink, 'finish')
  const all = Buffer.concat(got)
  t.equal(all.length, 50 * 4096)
  t.equal(all[4096 * 49], 49)
})

test('onWait hears each change of what the body waits on, once per change', async (t) => {
  const source = new PassThrough()
  const waits: string[] = []
  const out = guardBody(source, 5000, () => t.fail('no idle'), (on) => { waits.push(on) })
  t.same(waits, ['client'], 'at the start it waits on the client')
  source.write('a')
  source.write('b')
  await sleep(10)
  t.same(waits, ['client'], 'bytes that fit change nothing')
  source.write(Buffer.alloc(1024 * 1024)) // nobody reads `out`: the upstream side fills up
  await sleep(10)
  t.same(waits, ['client', 'reader'])
  const read = collect(out)
  source.end()
  await read
  t.same(waits.slice(-2), ['client', 'end'], 'once drained it waits on the client again, then the end')
})
