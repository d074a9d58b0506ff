/** Paths the gateway answers itself; a route prefix may not overlap them (docs/configuration.md). */
export const GATEWAY_PATHS = ['/healthz', '/readyz', '/metrics', '/docs', '/admin'] as const

/** The gateway's own path a route pattern belongs to (`/docs/json` → `/docs`), or null: the label metrics and logs share. */
export function ownPathOf (routeUrl: string | undefined): typeof GATEWAY_PATHS[number] | null {
  if (routeUrl === undefined) return null
  for (const own of GATEWAY_PATHS) if (routeUrl === own || routeUrl.startsWith(own + '/')) return own
  return null
}

/** The gateway's own paths that MANAGEMENT_PORT moves off the proxy listener. */
export const MANAGEMENT_PATHS = ['/metrics', '/docs', '/admin'] as const

/** Which listener may answer a route: the proxy's, the management one, or both (the probes). */
export type Surface = 'proxy' | 'management' | 'both'

/**
 * The surface of a matched route, from its registered pattern (`/docs/static/*`, `/admin/tokens/:id`,
 * the proxy's `/*`), never from the raw request path, so no spelling of a path can change it. A
 * route the router did not match (`undefined`: the not-found handler) belongs to the proxy.
 */
export function surfaceOf (routeUrl: string | undefined): Surface {
  if (routeUrl === undefined) return 'proxy'
  if (routeUrl === '/healthz' || routeUrl === '/readyz') return 'both'
  for (const own of MANAGEMENT_PATHS) if (routeUrl === own || routeUrl.startsWith(own + '/')) return 'management'
  return 'proxy'
}
