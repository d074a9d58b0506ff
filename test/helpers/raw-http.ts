// HTTP/1.1 over a raw `node:net` socket: requests go out byte for byte (duplicate headers,
// Connection lists, hostile request targets), which every client library would rewrite.
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'

/** One response as it came off the wire; header names lower-cased, duplicates kept. */
export interface RawResponse {
  status: number
  headers: Record<string, string[]>
  body: Buffer
  /** The head (status line and headers) as text, for diagnostics. */
  head: string
}

/** The single value of a header, or undefined; throws if the header came more than once. */
export function header (res: RawResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()]
  if (v === undefined) return undefined
  if (v.length !== 1) throw new Error(`header ${name} came ${v.length} times`)
  return v[0]
}

/** The response body parsed as JSON. */
export function json (res: RawResponse): Record<string, unknown> {
  return JSON.parse(res.body.toString('utf8')) as Record<string, unknown>
}

/** A client connection that sends raw bytes and parses the responses that come back, in order. */
export class RawConnection {
  closed = false
  private buf = Buffer.alloc(0)
  private wake: (() => void) | null = null

  private constructor (readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => { this.buf = Buffer.concat([this.buf, chunk]); this.notify() })
    socket.on('close', () => { this.closed = true; this.notify() })
    socket.on('error', () => {}) // a reset shows up as `closed`
  }

  /** Connects to `url`'s host and port. */
  static async open (url: string): Promise<RawConnection> {
    const u = new URL(url)
    const socket = connect(Number(u.port), u.hostname)
    await once(socket, 'connect')
    return new RawConnection(socket)
  }

  /** Writes `data` and reads the next response (`head`: the request was HEAD, so no body follows). */
  async request (data: string | Buffer, opts: { head?: boolean } = {}): Promise<RawResponse> {
    this.socket.write(data)
    return await this.response(opts)
  }

  /** Reads the next complete response; rejects when the connection closes before one arrives. */
  async response (opts: { head?: boolean } = {}): Promise<RawResponse> {
    for (;;) {
      const parsed = parseResponse(this.buf, opts.head === true, this.closed)
      if (parsed !== null) {
        this.buf = this.buf.subarray(parsed.consumed)
        if (parsed.res.status >= 200 || parsed.res.status === 101) return parsed.res
        continue // 1xx interim answers (100 Continue) come before the real one
      }
      if (this.closed) throw new Error(`connection closed before a complete response (${this.buf.length} bytes buffered)`)
      await new Promise<void>((resolve) => { this.wake = resolve })
    }
  }

  /** Resolves once the server has closed the connection (or `ms` passed: then false). */
  async waitClosed (ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!this.closed && Date.now() < deadline) {
      await Promise.race([
        new Promise<void>((resolve) => { this.wake = resolve }),
        new Promise<void>((resolve) => setTimeout(resolve, Math.max(1, deadline - Date.now())).unref())
      ])
    }
    return this.closed
  }

  /** Destroys the socket. */
  close (): void {
    this.socket.destroy()
  }

  private notify (): void {
    const w = this.wake
    this.wake = null
    w?.()
  }
}

/** Sends one request on a fresh connection and returns its response. */
export async function rawRequest (url: string, data: string | Buffer, opts: { head?: boolean } = {}): Promise<RawResponse> {
  const c = await RawConnection.open(url)
  try {
    return await c.request(data, opts)
  } finally {
    c.close()
  }
}

/** `GET <target> HTTP/1.1` with Host and extra header lines, exactly as given. */
export function rawGet (target: string, extraHeaders: string[] = []): string {
  return `GET ${target} HTTP/1.1\r\nHost: x\r\n${extraHeaders.map((h) => h + '\r\n').join('')}\r\n`
}

function parseResponse (buf: Buffer, head: boolean, closed: boolean): { res: RawResponse, consumed: number } | null {
  const end = buf.indexOf('\r\n\r\n')
  if (end === -1) return null
  const headText = buf.subarray(0, end).toString('latin1')
  const [statusLine = '', ...lines] = headText.split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)
  if (m === null) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine)}`)
  const status = Number(m[1])
  const headers: Record<string, string[]> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    ;(headers[name] ??= []).push(line.slice(colon + 1).trim())
  }
  const start = end + 4
  const res = (body: Buffer, consumed: number): { res: RawResponse, consumed: number } =>
    ({ res: { status, headers, body, head: headText }, consumed })
  if (head || status < 200 || status === 204 || status === 304) return res(Buffer.alloc(0), start)
  if (headers['transfer-encoding']?.some((v) => v.toLowerCase().includes('chunked')) === true) {
    return decodeChunked(buf, start, res)
  }
  const length = headers['content-length']?.[0]
  if (length !== undefined) {
    const n = Number(length)
    return buf.length - start >= n ? res(buf.subarray(start, start + n), start + n) : null
  }
  return closed ? res(buf.subarray(start), buf.length) : null
}

function decodeChunked<T> (buf: Buffer, start: number, done: (body: Buffer, consumed: number) => T): T | null {
  const parts: Buffer[] = []
  let pos = start
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', pos)
    if (lineEnd === -1) return null
    const size = parseInt(buf.subarray(pos, lineEnd).toString('latin1'), 16)
    if (Number.isNaN(size)) throw new Error('bad chunk size')
    if (size === 0) {
      // The last chunk is followed by optional trailer lines and an empty line.
      const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd)
      return trailerEnd === -1 ? null : done(Buffer.concat(parts), trailerEnd + 4)
    }
    if (buf.length < lineEnd + 2 + size + 2) return null
    parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size))
    pos = lineEnd + 2 + size + 2
  }
}
