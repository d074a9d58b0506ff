/** Paths the gateway answers itself; a route prefix may not overlap them (SPEC §2, §5). */
export const GATEWAY_PATHS = ['/healthz', '/readyz', '/metrics', '/docs', '/admin'] as const
