/**
 * A WebSocket tunnel after the handshake: bytes copied both ways unchanged (backpressure by
 * `pipe`), closed when either side goes, after a pause with no byte either way, or on demand.
 * It knows nothing of frames: the gateway never parses or rewrites what flows through it.
 */
import type { Socket } from 'node:net'

/** Why a tunnel ended; the callers' own reasons (revoked, shutdown…) come in through `close`. */
export type TunnelEnd = 'client_closed' | 'upstream_closed' | 'idle' | 'error' | (string & {})

/** What a finished tunnel reports. */
export interface TunnelStats {
  reason: TunnelEnd
  /** Milliseconds from `start` to both sockets closed. */
  ms: number
  /** Bytes read from / written to the client connection, the handshake included (socket counters). */
  bytesIn: number
  bytesOut: number
}

export interface TunnelOptions {
  /** Close after this long with no byte in either direction. */
  idleMs: number
  /** Called once, when both sockets are closed. */
  onEnd: (stats: TunnelStats) => void
}

/** How long a socket may take to flush to its peer once the other side has closed. */
const LINGER_MS = 5000

/** Both sockets of one WebSocket connection, joined. */
export class Tunnel {
  #reason: TunnelEnd | null = null
  #open = 2
  #started = 0

  constructor (readonly client: Socket, readonly upstream: Socket, private readonly opts: TunnelOptions) {}

  /** Starts copying; `clientHead`/`upstreamHead` are bytes each side sent past its handshake head. */
  start (clientHead: Buffer, upstreamHead: Buffer): void {
    const { client, upstream } = this
    this.#started = performance.now()
    // Every byte read on one socket is written on the other, so the client socket's own inactivity
    // timer (reset by reads and writes alike) measures "no byte either way": one timer per tunnel.
    client.setTimeout(this.opts.idleMs, () => { this.close('idle') })
    upstream.setTimeout(0)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    this.#watch(client, upstream, 'client_closed')
    this.#watch(upstream, client, 'upstream_closed')
    if (upstreamHead.length > 0) client.write(upstreamHead)
    if (clientHead.length > 0) upstream.write(clientHead)
    client.pipe(upstream)
    upstream.pipe(client)
  }

  /** Ends the tunnel now (both sockets destroyed), recording `reason` unless one was already known. */
  close (reason: TunnelEnd): void {
    this.#reason ??= reason
    this.client.destroy()
    this.upstream.destroy()
  }

  /** True until both sockets are closed. */
  get open (): boolean { return this.#open > 0 }

  #watch (socket: Socket, other: Socket, gone: TunnelEnd): void {
    // A FIN: `pipe` passes it on (half-close), the peer answers with its own, and both close.
    socket.once('end', () => { this.#reason ??= gone })
    socket.on('error', () => {
      this.#reason ??= 'error'
      other.destroy()
    })
    socket.once('close', () => {
      this.#reason ??= gone
      // Flush what is already queued for the other side (a close frame), then free it.
      other.destroySoon()
      setTimeout(() => { other.destroy() }, LINGER_MS).unref()
      if (--this.#open === 0) {
        this.opts.onEnd({
          reason: this.#reason,
          ms: performance.now() - this.#started,
          bytesIn: this.client.bytesRead,
          bytesOut: this.client.bytesWritten
        })
      }
    })
  }
}
