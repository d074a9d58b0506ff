// A WebSocket echo upstream on loopback (the `ws` package), recording every TCP connection and
// every upgrade request it saw, and able to refuse upgrades with a plain HTTP answer.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'

/** An upgrade the upstream received: its target and headers. */
export interface SeenUpgrade { url: string, headers: IncomingHttpHeaders, rawHeaders: string[] }

/** Echoes every message back (text as text, binary as binary); picks the first offered subprotocol. */
export class WsUpstream {
  readonly upgrades: SeenUpgrade[] = []
  /** TCP connections accepted, counted before any byte is read. */
  connections = 0
  /** When set, upgrades are answered with this raw HTTP response instead of a 101. */
  refuseWith: string | null = null
  readonly sockets = new Set<WebSocket>()
  readonly server: Server
  readonly wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024, handleProtocols: (p) => [...p][0] ?? false })
  url = ''
  private readonly tcp = new Set<Socket>()

  constructor () {
    this.server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('plain') })
    this.server.on('connection', (s: Socket) => { this.connections++; this.tcp.add(s); s.on('close', () => this.tcp.delete(s)) })
    this.server.on('upgrade', (req, socket, head) => {
      this.upgrades.push({ url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders })
      if (this.refuseWith !== null) { socket.end(this.refuseWith); return }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.add(ws)
        ws.on('close', () => this.sockets.delete(ws))
        ws.on('message', (data, isBinary) => { ws.send(data as Buffer, { binary: isBinary }) })
      })
    })
  }

  /** Listens on a free loopback port. */
  async start (): Promise<this> {
    this.server.listen(0, '127.0.0.1')
    await once(this.server, 'listening')
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  /** Number of TCP connections open right now. */
  get openConnections (): number { return this.tcp.size }

  /** Closes everything. */
  async close (): Promise<void> {
    for (const s of this.tcp) s.destroy()
    this.wss.close()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
