import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { createHash } from 'node:crypto'
import type { AddressInfo, Socket } from 'node:net'

/** What a recording upstream saw of one request. */
export interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  bodyBytes: number
  bodySha256: string
}

export type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void

/**
 * A real HTTP server on loopback that records every request (method, raw URL, headers, body
 * length and hash) and answers with `handler` (default: 200 JSON echo of method and url).
 */
export class Upstream {
  readonly seen: Seen[] = []
  /** Requests whose head arrived, counted before their body is read (seen[] fills at body end). */
  started = 0
  /** Called as soon as a request's head arrives, before its body: streaming and abort tests hook in here. */
  onStart: ((req: IncomingMessage, res: ServerResponse) => void) | null = null
  server: Server
  url = ''
  private readonly sockets = new Set<Socket>()

  constructor (public handler: Handler = echo) {
    this.server = createServer((req, res) => {
      this.started++
      this.onStart?.(req, res)
      const hash = createHash('sha256')
      let bytes = 0
      req.on('data', (chunk: Buffer) => { bytes += chunk.length; hash.update(chunk) })
      req.on('end', () => {
        const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: bytes, bodySha256: hash.digest('hex') }
        this.seen.push(seen)
        this.handler(req, res, seen)
      })
    })
    this.server.on('connection', (s: Socket) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)) })
  }

  /** Listens on a free loopback port, or on `port` (again after `close`, to bring an upstream back). */
  async start (port = 0): Promise<this> {
    this.server.listen(port, '127.0.0.1')
    await once(this.server, 'listening')
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  /** The last request seen. */
  last (): Seen {
    const s = this.seen[this.seen.length - 1]
    if (s === undefined) throw new Error('upstream saw no request')
    return s
  }

  /** Closes the server and destroys open connections. */
  async close (): Promise<void> {
    for (const s of this.sockets) s.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/** Default answer: 200 JSON `{method, url}`. */
export const echo: Handler = (req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ method: req.method, url: req.url }))
}
