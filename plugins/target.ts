import fp from 'fastify-plugin'
import { normaliseTarget } from '../src/lib/path.js'
import { RouteTable, type RouteConfig } from '../src/lib/route-table.js'
import { badPath, routeNotFound } from '../src/lib/errors.js'
import type { UpstreamFailureKind } from '../src/lib/upstream-failure.js'

/** This plugin's name: the plugins that read `request.target` list it in their `dependencies`. */
export const TARGET_PLUGIN = 'portcullis-target'

/** The authorised and forwarded request line: `path` is exactly what the upstream receives. */
export interface ProxyTarget { route: RouteConfig, path: string, query: string }

declare module 'fastify' {
  interface FastifyInstance {
    /** The configured routes by prefix, made once (plugins/target.ts). */
    routeTable: RouteTable
  }
  interface FastifyRequest {
    /** Where this request goes: set first thing in the proxy scope, read by auth, rate limit, logging, metrics. */
    target: ProxyTarget | null
    /** Set by the proxy when the upstream failed, for the request log and metrics. */
    upstreamFailure: UpstreamFailureKind | null
  }
}

/** The normalised path and its route, or throws 400 BAD_PATH / 404 ROUTE_NOT_FOUND. */
export function resolveTarget (table: RouteTable, rawUrl: string): ProxyTarget {
  const normalised = normaliseTarget(rawUrl)
  if (!normalised.ok) throw badPath(normalised.reason)
  const route = table.match(normalised.path)
  if (route === undefined) throw routeNotFound()
  return { route, path: normalised.path, query: normalised.query }
}

/** The route a request would be proxied to, without throwing: null for an unsafe or unrouted path. */
export function routeOfUrl (table: RouteTable, rawUrl: string): RouteConfig | null {
  const normalised = normaliseTarget(rawUrl)
  return normalised.ok ? table.match(normalised.path) ?? null : null
}

/**
 * Owns where a proxied request goes: the route table, `request.target` and `request.upstreamFailure`.
 * It sits below everything that reads them (auth, request log, metrics, the proxy and WebSocket
 * routes), so those read a decoration whose owner they import. The proxy scope calls
 * `resolveTarget` first thing (routes/proxy.ts).
 */
export default fp(async function targetPlugin (app) {
  app.decorate('routeTable', new RouteTable(app.config.routes))
  app.decorateRequest('target', null)
  app.decorateRequest('upstreamFailure', null)
}, { name: TARGET_PLUGIN, fastify: '5.x', dependencies: ['portcullis-config'] })
