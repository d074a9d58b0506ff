/**
 * The proxy surface as OpenAPI 3.0 paths. The proxy is one catch-all route (hidden from the
 * generated document), so its operations are written out here: one path per configured route
 * prefix, every common method, bearer security, and the answers the gateway itself makes (docs/reference.md).
 */
import { REQUEST_ID_PATTERN, REQUEST_ID_SHAPE } from './forward-headers.js'

/** The methods documented for each prefix; all of them are proxied alike. */
export const PROXY_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'] as const
const WITH_BODY = new Set<string>(['put', 'post', 'patch'])

const ref = (kind: string, name: string): { $ref: string } => ({ $ref: `#/components/${kind}/${name}` })

const errorResponse = (description: string, headers: string[] = []): object => ({
  description,
  headers: Object.fromEntries(['X-Request-Id', ...headers].map((h) => [h, ref('headers', h)])),
  content: { 'application/json': { schema: ref('schemas', 'Error') } }
})

/** Shared pieces the proxy paths (and other routes) refer to: schemas, headers, responses, security. */
export const OPENAPI_COMPONENTS = {
  securitySchemes: {
    bearerAuth: {
      type: 'http',
      scheme: 'bearer',
      description: 'A gateway token (`pc_…`) created with `portcullis tokens create` or `POST /admin/tokens`. Never in the query string.'
    },
    adminToken: {
      type: 'http',
      scheme: 'bearer',
      description: 'The `ADMIN_TOKEN` of the gateway; without it the admin API answers 404.'
    }
  },
  schemas: {
    Error: {
      type: 'object',
      description: 'Every answer the gateway makes itself (as opposed to what an upstream answers).',
      required: ['statusCode', 'code', 'error', 'message'],
      properties: {
        statusCode: { type: 'integer', example: 429 },
        code: { type: 'string', description: 'Machine-readable code from docs/reference.md', example: 'RATE_LIMITED' },
        error: { type: 'string', description: 'HTTP reason phrase', example: 'Too Many Requests' },
        message: { type: 'string', example: 'Rate limit exceeded; retry in 3 s' }
      }
    }
  },
  headers: {
    RateLimit: {
      description: 'draft-ietf-httpapi-ratelimit-headers-11: remaining requests and seconds until the bucket is full',
      schema: { type: 'string', example: '"default";r=99;t=1' }
    },
    'RateLimit-Policy': {
      description: 'draft-ietf-httpapi-ratelimit-headers-11: burst (q) and seconds to refill a full bucket (w)',
      schema: { type: 'string', example: '"default";q=100;w=60' }
    },
    'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer', minimum: 0, example: 3 } },
    'X-Request-Id': {
      description: `The client's X-Request-Id when it is ${REQUEST_ID_SHAPE}, else one made by the gateway; also sent upstream`,
      schema: { type: 'string' }
    },
    'WWW-Authenticate': { description: 'Bearer challenge', schema: { type: 'string', example: 'Bearer error="invalid_token"' } }
  },
  parameters: {
    ProxyPath: {
      name: 'path',
      in: 'path',
      required: true,
      description: 'The rest of the path after the prefix, `/` included (`1/reviews`), forwarded unchanged after normalisation with the query string. The prefix itself is its own operation.',
      schema: { type: 'string' }
    },
    XRequestId: {
      name: 'X-Request-Id',
      in: 'header',
      required: false,
      description: `Correlation id, kept when it is ${REQUEST_ID_SHAPE}`,
      schema: { type: 'string', pattern: REQUEST_ID_PATTERN }
    }
  },
  responses: {
    BadPath: errorResponse('`BAD_PATH`: the path cannot be normalised safely'),
    Unauthorized: errorResponse('`TOKEN_MISSING`, `TOKEN_INVALID` or `TOKEN_EXPIRED`', ['WWW-Authenticate']),
    Forbidden: errorResponse("`ROUTE_FORBIDDEN`: the token's allowed_routes do not cover this method and path"),
    RouteNotFound: errorResponse('`ROUTE_NOT_FOUND`: no route prefix covers the path'),
    RateLimited: errorResponse('`RATE_LIMITED`: over the token\'s limit; `t` of RateLimit equals Retry-After', ['Retry-After', 'RateLimit', 'RateLimit-Policy']),
    UpstreamError: errorResponse('`UPSTREAM_ERROR`: the upstream refused, reset or answered garbage'),
    Unavailable: errorResponse('`STORE_UNAVAILABLE` (Redis unreachable), `CIRCUIT_OPEN` (the route\'s upstream keeps failing: nothing was forwarded; Retry-After is the rest of the cooldown), `UNDER_PRESSURE` (load shedding)', ['Retry-After']),
    UpstreamTimeout: errorResponse('`UPSTREAM_TIMEOUT`: no response head from the upstream in time')
  }
}

/** `/api/v1/users` → `proxyGetApiV1Users` (`…Prefix` for the prefix itself): unique per path and method. */
function operationId (method: string, prefix: string, itself: boolean): string {
  const words = prefix.split(/[^A-Za-z0-9]+/).filter((w) => w !== '')
  const camel = (w: string): string => w.charAt(0).toUpperCase() + w.slice(1)
  return `proxy${camel(method)}${words.map(camel).join('') || 'Root'}${itself ? 'Prefix' : ''}`
}

/**
 * The OpenAPI path item of one route prefix, either the prefix itself (`itself`, no parameter:
 * `GET /api/v1/products`) or the paths below it (`{path}`): every method, bearer security, the
 * gateway's answers. Swagger UI percent-encodes `/` in a path parameter whatever `allowReserved`
 * says; its request interceptor (routes/docs.ts) sends `1/reviews` as typed.
 */
function proxyPathItem (prefix: string, itself: boolean): Record<string, object> {
  const item: Record<string, object> = {}
  for (const method of PROXY_METHODS) {
    item[method] = {
      tags: ['proxy'],
      operationId: operationId(method, prefix, itself),
      summary: itself ? `${method.toUpperCase()} ${prefix} → upstream` : `${method.toUpperCase()} ${prefix}/… → upstream`,
      description: 'Authenticated, permission-checked and rate-limited, then streamed to the upstream of this prefix. Any status the upstream answers with is passed through; the error answers listed are the gateway\'s own.',
      security: [{ bearerAuth: [] }],
      parameters: itself ? [ref('parameters', 'XRequestId')] : [ref('parameters', 'ProxyPath'), ref('parameters', 'XRequestId')],
      ...(WITH_BODY.has(method)
        ? { requestBody: { required: false, description: 'Streamed to the upstream unchanged', content: { '*/*': { schema: { type: 'string', format: 'binary' } } } } }
        : {}),
      responses: {
        200: {
          description: "The upstream's answer, streamed unchanged (other upstream statuses are passed through the same way)",
          headers: {
            RateLimit: ref('headers', 'RateLimit'),
            'RateLimit-Policy': ref('headers', 'RateLimit-Policy'),
            'X-Request-Id': ref('headers', 'X-Request-Id')
          },
          content: { '*/*': { schema: { type: 'string', format: 'binary' } } }
        },
        400: ref('responses', 'BadPath'),
        401: ref('responses', 'Unauthorized'),
        403: ref('responses', 'Forbidden'),
        404: ref('responses', 'RouteNotFound'),
        429: ref('responses', 'RateLimited'),
        502: ref('responses', 'UpstreamError'),
        503: ref('responses', 'Unavailable'),
        504: ref('responses', 'UpstreamTimeout')
      }
    }
  }
  return item
}

/** Two OpenAPI paths per route prefix: `/api/v1/users` itself and `/api/v1/users/{path}` below it. */
export function proxyPaths (prefixes: readonly string[]): Record<string, Record<string, object>> {
  const paths: Record<string, Record<string, object>> = {}
  for (const prefix of prefixes) {
    const base = prefix.replace(/\/+$/, '')
    paths[base] = proxyPathItem(base, true)
    paths[`${base}/{path}`] = proxyPathItem(base, false)
  }
  return paths
}
