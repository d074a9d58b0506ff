/**
 * MANAGEMENT_PORT: a second listener for /metrics, /docs and /admin (docs/operations.md).
 *
 * One Fastify instance, two servers: the management listener is a plain `node:http` server whose
 * requests go through `app.routing`, the same router, hooks, metrics registry, Redis client and
 * shutdown as the proxy listener. Each request is tagged with the listener it arrived on; the
 * guard below compares that with the surface of the route the router matched (src/lib/gateway-paths.ts,
 * from the route's pattern, not the raw path), so no spelling of a path can reach a management
 * route on the proxy listener, and the proxy is not served on the management one. Both answer
 * 404 NOT_FOUND. /healthz and /readyz answer on both. Unset: one listener serves everything.
 */
import fp from 'fastify-plugin'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { surfaceOf } from '../src/lib/gateway-paths.js'
import { notFound } from '../src/lib/errors.js'
import { IDLE_CONNECTION_TIMEOUT_MS } from '../src/lib/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The management listener; `listen` is a no-op without MANAGEMENT_PORT. */
    management: {
      /** Starts listening on MANAGEMENT_HOST:MANAGEMENT_PORT; resolves to the bound address, or null when unset. */
      listen: () => Promise<AddressInfo | null>
      /** True when `request.raw` arrived on the management listener. */
      isManagementRequest: (raw: IncomingMessage) => boolean
    }
  }
}

export default fp(async function managementPlugin (app) {
  const settings = app.config.management
  const arrived = new WeakSet<IncomingMessage>()
  let server: Server | null = null

  app.decorate('management', {
    isManagementRequest: (raw: IncomingMessage): boolean => arrived.has(raw),
    listen: async (): Promise<AddressInfo | null> => {
      if (settings === null) return null
      const s = createServer((req, res) => {
        arrived.add(req)
        app.routing(req, res)
      })
      s.keepAliveTimeout = IDLE_CONNECTION_TIMEOUT_MS // as on the proxy listener
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen({ port: settings.port, host: settings.host }, () => { s.off('error', reject); resolve() })
      })
      server = s
      const address = s.address() as AddressInfo
      app.log.info({ address: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` }, 'management listener (/metrics, /docs, /admin) started')
      return address
    }
  })

  if (settings === null) return

  // First of the root onRequest hooks (registered right after the error handler): nothing else
  // runs for a request on the wrong listener, not even load shedding or the token check.
  app.addHook('onRequest', (request, _reply, done) => {
    const surface = surfaceOf(request.routeOptions.url)
    const onManagement = arrived.has(request.raw)
    if (surface === 'both' || (surface === 'management') === onManagement) return done()
    done(notFound(onManagement ? 'The management listener serves only /metrics, /docs, /admin, /healthz and /readyz' : 'Not found'))
  })

  // Closed with the app, before Redis is (preClose runs first): in-flight answers finish, idle
  // keep-alive connections are closed at once, as on the proxy listener. Draining first: an answer
  // still in flight then carries Connection: close, or its keep-alive connection (and so this
  // close) would last until keepAliveTimeout.
  app.addHook('preClose', async () => {
    const s = server
    if (s === null) return
    app.lifecycle.beginDraining()
    await new Promise<void>((resolve) => {
      s.close(() => { resolve() })
      s.closeIdleConnections()
    })
  })
}, { name: 'portcullis-management', fastify: '5.x', dependencies: ['portcullis-config', 'portcullis-errors', 'portcullis-shutdown'] })
