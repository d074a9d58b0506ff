/**
 * GET /docs: Swagger UI served from node_modules (no CDN), `GET /docs/json` the OpenAPI document
 * of plugins/swagger.ts. Nothing is fetched from elsewhere (the swagger.io validator badge is off).
 */
import type { FastifyInstance } from 'fastify'
import swaggerUi from '@fastify/swagger-ui'
import { createHash } from 'node:crypto'

// Swagger UI renders its SVG logo with this <style> element before @fastify/swagger-ui swaps the
// logo; allowing exactly its hash keeps style-src free of 'unsafe-inline'. test/docs-browser.test.ts
// fails on any CSP violation, so a Swagger UI upgrade that changes it is noticed.
const LOGO_STYLE = '.logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}'
const LOGO_STYLE_HASH = `'sha256-${createHash('sha256').update(LOGO_STYLE).digest('base64')}'`

/**
 * The plugin's own `staticCSP: true` policy, narrowed: same origin only (no `https:` styles and
 * fonts, no validator.swagger.io images), and no `upgrade-insecure-requests`, which would break
 * the page when the gateway is reached over plain HTTP on a non-loopback address.
 */
const CSP = {
  'default-src': ["'self'"],
  'base-uri': ["'self'"],
  'connect-src': ["'self'"],
  'font-src': ["'self'", 'data:'],
  'form-action': ["'self'"],
  'frame-ancestors': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'object-src': ["'none'"],
  'script-src': ["'self'"],
  'script-src-attr': ["'none'"],
  'style-src': ["'self'", LOGO_STYLE_HASH]
}

/**
 * "Try it out": Swagger UI percent-encodes every path parameter, `/` included, so the proxy's
 * `{path}` = `1/reviews` would leave as `1%2Freviews`, which the gateway refuses (BAD_PATH,
 * docs/forwarding.md); swagger-ui ignores `allowReserved` on path parameters. This interceptor
 * turns `%2F` back into `/` in the path part of every request the page sends. No operation needs
 * an encoded `/` (the gateway refuses it everywhere), so nothing else changes. @fastify/swagger-ui
 * serialises the function's source into /docs/swagger-initializer.js, a same-origin script the
 * CSP's `script-src 'self'` allows: it must be self-contained (no closure, no imports).
 */
export function sendSlashesAsTyped (req: { url: string }): { url: string } {
  const q = req.url.search(/[?#]/)
  const path = q === -1 ? req.url : req.url.slice(0, q)
  req.url = path.replace(/%2F/gi, '/') + (q === -1 ? '' : req.url.slice(q))
  return req
}

/** Registers the Swagger UI under /docs. */
export default async function docsRoutes (app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: CSP,
    validatorUrl: false,
    uiConfig: { docExpansion: 'list', deepLinking: true, tryItOutEnabled: false, requestInterceptor: sendSlashesAsTyped } as Record<string, unknown>
  })
}
