/**
 * The OpenAPI 3.0.3 document: @fastify/swagger collects the TypeBox schemas of every route
 * registered after it (health, metrics, admin); the catch-all proxy route is hidden and its
 * surface written out per configured prefix by src/lib/openapi-proxy.ts. `GET /docs/json` serves
 * it (routes/docs.ts); `npm run openapi` writes it to openapi/openapi.json with `openapiText`.
 */
import fp from 'fastify-plugin'
import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import { packageVersion } from '../src/version.js'
import { OPENAPI_COMPONENTS, proxyPaths } from '../src/lib/openapi-proxy.js'

const DESCRIPTION = [
  'Portcullis validates bearer tokens stored in Redis, rate-limits each token across every gateway',
  'instance (GCRA, one atomic Redis script) and streams requests to the upstream chosen by the',
  'longest matching route prefix. Answers the gateway makes itself have the `Error` shape.'
].join(' ')

/** Registers @fastify/swagger with the gateway's info, security schemes, tags and proxy paths. */
export default fp(async function swaggerPlugin (app) {
  // Without ADMIN_TOKEN the admin routes are hidden (routes/admin.ts), and so are their tag and scheme.
  const admin = app.config.adminToken !== null
  // Plain JSON checked by the OpenAPI validator in test/openapi.test.ts, rather than by openapi-types.
  const openapi = {
    openapi: '3.0.3',
    info: { title: 'Portcullis API gateway', version: packageVersion(), description: DESCRIPTION },
    tags: [
      { name: 'proxy', description: 'The configured route prefixes, proxied to their upstreams' },
      { name: 'health', description: 'Kubernetes liveness and readiness probes' },
      { name: 'metrics', description: 'Prometheus metrics' },
      ...(admin ? [{ name: 'admin', description: 'Token management (needs ADMIN_TOKEN)' }] : [])
    ],
    components: admin ? OPENAPI_COMPONENTS : withoutAdminScheme(OPENAPI_COMPONENTS),
    // @fastify/swagger adds the routes' own paths to this object: a fresh one per app.
    paths: proxyPaths(app.config.routes.map((r) => r.prefix))
  } as FastifyDynamicSwaggerOptions['openapi']
  await app.register(swagger, { openapi })
}, { name: 'portcullis-swagger', fastify: '5.x', dependencies: ['portcullis-config'] })

function withoutAdminScheme (components: typeof OPENAPI_COMPONENTS): object {
  const { adminToken: _unused, ...securitySchemes } = components.securitySchemes
  return { ...components, securitySchemes }
}

/** The document as checked in: keys sorted at every level, two-space indent, trailing newline. */
export function openapiText (app: FastifyInstance): string {
  return JSON.stringify(sortKeys(app.swagger()), null, 2) + '\n'
}

function sortKeys (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key])
  return out
}
