// The two clients of a TLS gateway: HTTP/1.1 (node:https, ALPN http/1.1) and HTTP/2 (node:http2).
import { request as httpsRequest, type RequestOptions } from 'node:https'
import { connect, constants, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2'
import type { IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'

/** One answer, whichever protocol carried it. */
export interface TlsAnswer { status: number, headers: IncomingHttpHeaders, body: Buffer, alpn: string }

export interface TlsRequest {
  method?: string
  path: string
  headers?: Record<string, string>
  /** Sent as a stream, chunk by chunk. */
  body?: Buffer[]
}

/** An HTTP/1.1 request over TLS (ALPN http/1.1), trusting `ca`. */
export async function h1Request (url: string, ca: string, req: TlsRequest): Promise<TlsAnswer> {
  return await new Promise((resolve, reject) => {
    const options = { method: req.method ?? 'GET', headers: req.headers, ca, ALPNProtocols: ['http/1.1'], agent: false } as RequestOptions
    const r = httpsRequest(new URL(req.path, url), options, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const socket = res.socket as unknown as { alpnProtocol?: string }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), alpn: String(socket.alpnProtocol) })
      })
      res.on('error', reject)
    })
    r.on('error', reject)
    if (req.body === undefined) r.end()
    else Readable.from(req.body).pipe(r)
  })
}

/** An HTTP/2 session to `url`, trusting `ca`; the caller closes it. */
export async function h2Session (url: string, ca: string): Promise<ClientHttp2Session> {
  const session = connect(url, { ca })
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve())
    session.once('error', reject)
  })
  return session
}

/** An HTTP/2 request on `session` (a new session, closed after, when none is given). */
export async function h2Request (url: string, ca: string, req: TlsRequest, given?: ClientHttp2Session): Promise<TlsAnswer> {
  const session = given ?? await h2Session(url, ca)
  try {
    return await new Promise((resolve, reject) => {
      const headers: OutgoingHttpHeaders = { ':method': req.method ?? 'GET', ':path': req.path, ...req.headers }
      const stream = session.request(headers, { endStream: req.body === undefined })
      let status = 0
      let head: IncomingHttpHeaders = {}
      const chunks: Buffer[] = []
      stream.on('response', (h) => {
        status = Number(h[constants.HTTP2_HEADER_STATUS])
        head = h as IncomingHttpHeaders
      })
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => { resolve({ status, headers: head, body: Buffer.concat(chunks), alpn: String(session.alpnProtocol) }) })
      stream.on('error', reject)
      if (req.body !== undefined) Readable.from(req.body).pipe(stream)
    })
  } finally {
    if (given === undefined) session.close()
  }
}
