/**
 * The open WebSocket tunnels of one app: the gauge and the close counter, the periodic token
 * re-check (revoked, expired, or route no longer allowed → closed), and closing them all when the
 * shutdown grace runs out.
 */
import type { FastifyInstance } from 'fastify'
import { Tunnel, type TunnelStats } from '../src/lib/tunnel.js'
import { TUNNEL_CHECK_COMMAND, TUNNEL_CHECK_SCRIPT, decodeTunnelCheck } from '../src/lib/tunnel-check.js'
import { compiledRoutes } from '../src/lib/route-patterns.js'
import { tokenKeys } from '../src/tokens/keys.js'
import type { WebSocketCloseReason } from '../plugins/metrics.js'
import type { Socket } from 'node:net'

/** What a tunnel was admitted with: its token (by digest), routes revision, route and path. */
export interface TunnelGrant {
  digest: string
  routesRev: string
  routePrefix: string
  path: string
}

type CheckCommand = (record: string, routesRev: string) => Promise<unknown>

interface Entry { tunnel: Tunnel, grant: TunnelGrant, timer: NodeJS.Timeout, checking: boolean }

/** How long before the shutdown deadline the remaining tunnels are closed, so the process exits cleanly. */
export function shutdownCloseDelay (graceMs: number): number {
  return Math.max(0, graceMs - Math.min(1000, Math.floor(graceMs / 4)))
}

/** Keeps the tunnels of one app; `open` joins two sockets and watches the token until they close. */
export class TunnelRegistry {
  readonly #entries = new Set<Entry>()
  readonly #check: CheckCommand
  #shutdownTimer: NodeJS.Timeout | null = null

  constructor (private readonly app: FastifyInstance) {
    const client = app.redis
    client.defineCommand(TUNNEL_CHECK_COMMAND, { numberOfKeys: 1, lua: TUNNEL_CHECK_SCRIPT })
    const run = (client as unknown as Record<string, CheckCommand>)[TUNNEL_CHECK_COMMAND] as CheckCommand
    this.#check = async (record, rev) => await run.call(client, record, rev)
  }

  /** Number of open tunnels. */
  get size (): number { return this.#entries.size }

  /** Starts a tunnel; `onEnd` runs once both sockets are closed (after the metrics are updated). */
  open (client: Socket, upstream: Socket, clientHead: Buffer, upstreamHead: Buffer, grant: TunnelGrant, onEnd: (stats: TunnelStats) => void): void {
    const { websocket } = this.app.config
    const entry: Entry = {
      tunnel: new Tunnel(client, upstream, {
        idleMs: websocket.idleTimeoutMs,
        onEnd: (stats) => {
          clearInterval(entry.timer)
          this.#entries.delete(entry)
          this.app.metrics.websocketClosed(grant.routePrefix, stats.reason as WebSocketCloseReason)
          onEnd(stats)
        }
      }),
      grant,
      // One Redis command per tunnel per period; unref'd so an open tunnel never holds a test or a drain.
      timer: setInterval(() => { this.#recheck(entry).catch(() => {}) }, websocket.recheckSeconds * 1000).unref(),
      checking: false
    }
    this.#entries.add(entry)
    this.app.metrics.websocketOpened(grant.routePrefix)
    entry.tunnel.start(clientHead, upstreamHead)
  }

  /** On shutdown: tunnels keep running through the grace period, then are closed. */
  beginShutdown (graceMs: number): void {
    if (this.#shutdownTimer !== null) return
    this.#shutdownTimer = setTimeout(() => { this.closeAll('shutdown') }, shutdownCloseDelay(graceMs)).unref()
  }

  /** Closes every open tunnel with `reason`. */
  closeAll (reason: WebSocketCloseReason): void {
    for (const e of this.#entries) e.tunnel.close(reason)
  }

  async #recheck (entry: Entry): Promise<void> {
    if (entry.checking || !entry.tunnel.open) return // a slow Redis: never two checks of one tunnel at once
    entry.checking = true
    const { grant } = entry
    try {
      const result = decodeTunnelCheck(await this.#check(tokenKeys(this.app.config.redisKeyPrefix, grant.digest).record, grant.routesRev))
      if (result.status === 'unknown') entry.tunnel.close('revoked')
      else if (result.status === 'expired') entry.tunnel.close('expired')
      else if (result.status === 'changed') {
        // The upgrade was a GET: the tunnel stays only while the new routes still allow it.
        if (compiledRoutes(result.routes).allows('GET', grant.path)) grant.routesRev = result.routesRev
        else entry.tunnel.close('forbidden')
      }
    } catch {
      // Redis unavailable: the tunnel was admitted, and a store blip must not cut every open
      // connection at once; the next period checks again (docs/operations.md).
    } finally {
      entry.checking = false
    }
  }
}
