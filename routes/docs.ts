/**
 * GET /docs: Swagger UI served from node_modules (no CDN), `GET /docs/json` the OpenAPI document
 * of plugins/swagger.ts. The UI's static CSP allows only this origin, and nothing is fetched
 * from elsewhere (the swagger.io validator badge is off).
 */
import type { FastifyInstance } from 'fastify'
import swaggerUi from '@fastify/swagger-ui'

/** Registers the Swagger UI under /docs. */
export default async function docsRoutes (app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    validatorUrl: false,
    uiConfig: { docExpansion: 'list', deepLinking: true, tryItOutEnabled: false }
  })
}
