// Client side of the WebSocket tests: a `ws` client through the gateway, and the opening
// handshake written byte for byte (so a refusal's status, headers and JSON body can be read whole).
import { once } from 'node:events'
import WebSocket from 'ws'

/** The handshake of RFC 6455 section 4.1 for `target`, plus extra header lines exactly as given. */
export function rawHandshake (target: string, extraHeaders: string[] = []): string {
  return `GET ${target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
    extraHeaders.map((h) => h + '\r\n').join('') + '\r\n'
}

/** Opens a `ws` client to `httpUrl` + `path` with a bearer (or none) and waits until it is open. */
export async function openWs (httpUrl: string, path: string, bearer: string | null, protocols: string[] = []): Promise<WebSocket> {
  const ws = new WebSocket(httpUrl.replace(/^http/, 'ws') + path, protocols, {
    headers: bearer === null ? {} : { authorization: bearer },
    maxPayload: 16 * 1024 * 1024
  })
  await Promise.race([once(ws, 'open'), once(ws, 'unexpected-response').then(([, res]) => {
    throw new Error(`upgrade refused with ${String((res as { statusCode?: number }).statusCode)}`)
  })])
  return ws
}

/** The next message as `{ data, isBinary }`. */
export async function nextMessage (ws: WebSocket): Promise<{ data: Buffer, isBinary: boolean }> {
  const [data, isBinary] = await once(ws, 'message') as [Buffer, boolean]
  return { data, isBinary }
}

/** Resolves with the close code once the socket closes, or null after `ms`. */
export async function closedWithin (ws: WebSocket, ms: number): Promise<number | null> {
  if (ws.readyState === WebSocket.CLOSED) return 1006
  return await Promise.race([
    once(ws, 'close').then(([code]) => code as number),
    new Promise<null>((resolve) => setTimeout(() => resolve(null), ms).unref())
  ])
}
