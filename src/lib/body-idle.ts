/**
 * The client body idle timeout (CLIENT_BODY_TIMEOUT_MS): the request body is handed to the upstream
 * through a PassThrough that carries the same bytes and a timer. The timer runs only while the
 * gateway waits for the client; while the upstream is slow to read (backpressure) it is stopped,
 * since that wait is not the client's doing. Node streams only, no Fastify (docs/forwarding.md).
 */
import { PassThrough, type Readable } from 'node:stream'

/** `code` of the error the guarded body is destroyed with when the client went idle. */
export const CLIENT_BODY_IDLE = 'PORTCULLIS_CLIENT_BODY_IDLE'
/** `code` of the error the guarded body is destroyed with when the client body ended early (client gone). */
export const CLIENT_BODY_ABORTED = 'PORTCULLIS_CLIENT_BODY_ABORTED'

const bodyError = (code: string, message: string): Error => Object.assign(new Error(message), { code })

/** What the body waits on: more bytes from the client, room on the upstream side, nothing (it ended). */
export type BodyWait = 'client' | 'reader' | 'end'

/**
 * Pipes `source` into a new stream for the upstream. `idleMs` without a body byte while the gateway
 * is ready to read: `onIdle()` is called, then the returned stream is destroyed (which aborts the
 * upstream request). `source` itself is never destroyed here: the caller still answers on its socket.
 * `onWait` hears each change of what the body waits on (the caller times the upstream with it).
 */
export function guardBody (source: Readable, idleMs: number, onIdle: () => void, onWait?: (on: BodyWait) => void): PassThrough {
  const out = new PassThrough()
  let timer: NodeJS.Timeout | null = null
  let done = false
  let waiting: BodyWait | null = null
  const wait = (on: BodyWait): void => {
    if (waiting === on) return
    waiting = on
    onWait?.(on)
  }

  const arm = (): void => {
    if (timer === null) timer = setTimeout(fire, idleMs)
    else timer.refresh()
    wait('client')
  }
  const disarm = (): void => {
    if (timer !== null) clearTimeout(timer)
    timer = null
  }
  const finish = (): void => {
    done = true
    disarm()
    source.off('data', onData)
    source.off('end', onEnd)
    source.off('close', onClose)
    // The 'error' listener stays: Node decides to emit an abort error when the request is destroyed
    // and emits it a tick later, when the upstream side may already have finished us here.
    out.off('drain', onDrain)
  }
  function fire (): void {
    timer = null
    if (done) return
    finish()
    source.pause()
    onIdle()
    out.destroy(bodyError(CLIENT_BODY_IDLE, `no request body byte for ${idleMs} ms`))
  }
  function onData (chunk: Buffer): void {
    if (out.write(chunk)) {
      arm()
      return
    }
    // The upstream side is full: stop reading and stop the clock until it drains.
    disarm()
    source.pause()
    out.once('drain', onDrain)
    wait('reader')
  }
  function onDrain (): void {
    if (done) return
    arm()
    source.resume()
  }
  function onEnd (): void {
    finish()
    wait('end')
    out.end()
  }
  function onClose (): void {
    if (done || source.readableEnded) return
    finish()
    out.destroy(bodyError(CLIENT_BODY_ABORTED, 'the client went away before the end of the request body'))
  }

  // The upstream side went away (upstream error, abort): nothing more to time or to carry.
  out.once('close', () => { if (!done) { finish(); source.pause() } })
  source.on('error', onClose)
  if (source.readableEnded) {
    done = true
    wait('end')
    out.end()
    return out
  }
  if (source.destroyed) {
    onClose()
    return out
  }
  source.on('data', onData)
  source.once('end', onEnd)
  source.once('close', onClose)
  arm()
  return out
}
