// The OpenAPI document: the checked-in openapi/openapi.json is what the app generates, it is a
// valid OpenAPI 3 document, and it describes the proxy surface (bearer security, error answers).
import t from 'tap'
import { readFile } from 'node:fs/promises'
import SwaggerParser from '@apidevtools/swagger-parser'
import { sharedRedis } from './helpers/redis.js'
import { CALM, startGateway } from './helpers/gateway.js'
import { generateOpenapi, OPENAPI_ADMIN_TOKEN, OPENAPI_FILE, OPENAPI_ROUTES } from '../scripts/openapi.js'
import { PROXY_METHODS } from '../src/lib/openapi-proxy.js'

interface Doc {
  openapi: string
  paths: Record<string, Record<string, {
    security?: Array<Record<string, string[]>>
    responses: Record<string, { $ref?: string, headers?: Record<string, unknown> }>
  }>>
  components: {
    securitySchemes: Record<string, { type: string, scheme: string }>
    schemas: Record<string, { required?: string[] }>
    responses: Record<string, { description?: string, headers?: Record<string, unknown> }>
  }
}

const redis = await sharedRedis()
const generated = await generateOpenapi(redis.url)
const doc = JSON.parse(generated) as Doc
t.teardown(() => redis.close())

t.test('the checked-in openapi/openapi.json is what the app generates', async (t) => {
  const checkedIn = await readFile(OPENAPI_FILE, 'utf8').catch(() => '')
  t.ok(checkedIn === generated, `${OPENAPI_FILE} is out of date: run \`npm run openapi\` and commit the result`)
  t.ok(generated.endsWith('}\n'), 'ends with one newline')
})

t.test('it is a valid OpenAPI 3 document', async (t) => {
  const api = await SwaggerParser.validate(structuredClone(doc) as never) as unknown as { openapi: string }
  t.match(api.openapi, /^3\.0\./)
})

t.test('every configured prefix is a proxy path with every method, bearer security and the error answers', async (t) => {
  const prefixes = OPENAPI_ROUTES.split(',').map((r) => r.split('=')[0] as string)
  t.same(prefixes, ['/api/v1/users', '/api/v1/products'])
  t.match(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer' })
  t.same(doc.components.schemas.Error?.required, ['statusCode', 'code', 'error', 'message'])
  for (const prefix of prefixes) {
    t.ok(doc.paths[prefix]?.get !== undefined, `${prefix} itself is an operation (no required path parameter)`)
    const item = doc.paths[`${prefix}/{path}`]
    if (item === undefined) { t.fail(`no path for ${prefix}`); continue }
    t.same(Object.keys(item).sort(), [...PROXY_METHODS].sort(), `${prefix}: every method`)
    for (const [method, op] of Object.entries(item)) {
      t.same(op.security, [{ bearerAuth: [] }], `${method} ${prefix}: bearer security`)
      t.same(Object.keys(op.responses).sort(), ['200', '400', '401', '403', '404', '429', '502', '503', '504'], `${method} ${prefix}: responses`)
      t.same(Object.keys(op.responses['200']?.headers ?? {}).sort(), ['RateLimit', 'RateLimit-Policy', 'X-Request-Id'])
      t.equal(op.responses['429']?.$ref, '#/components/responses/RateLimited')
    }
  }
  t.same(Object.keys(doc.components.responses.RateLimited?.headers ?? {}).sort(), ['RateLimit', 'RateLimit-Policy', 'Retry-After', 'X-Request-Id'])
  t.ok(doc.components.responses.Unavailable?.headers?.['Retry-After'] !== undefined, '503 documents Retry-After')
  t.match(doc.components.responses.Unavailable?.description, /`CIRCUIT_OPEN`/, '503 names the open circuit')
  t.notOk(Object.keys(doc.paths).some((p) => p.includes('*')), 'the catch-all route itself is hidden')
  t.notMatch(generated, /127\.0\.0\.1:300/, 'upstream addresses are not published')
})

t.test('the gateway routes are documented, and GET /docs/json serves the same document', async (t) => {
  for (const p of ['/healthz', '/readyz', '/metrics']) t.ok(doc.paths[p]?.get !== undefined, `GET ${p}`)
  for (const p of ['/admin/tokens', '/admin/tokens/{id}']) t.ok(doc.paths[p] !== undefined, `${p}: the checked-in document is the full surface`)
  t.notMatch(generated, new RegExp(OPENAPI_ADMIN_TOKEN), 'the generation-time admin token is not in it')
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: OPENAPI_ROUTES, ADMIN_TOKEN: 'another-admin-token-0123456789' })
  t.teardown(() => gw.app.close())
  const res = await fetch(gw.url + '/docs/json')
  t.equal(res.status, 200)
  t.same(await res.json(), doc)
})

t.test('without ADMIN_TOKEN, /docs/json documents only what is served: no /admin paths, tag or scheme', async (t) => {
  const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: OPENAPI_ROUTES })
  t.teardown(() => gw.app.close())
  const live = await (await fetch(gw.url + '/docs/json')).json() as Doc & { tags: Array<{ name: string }> }
  t.same(Object.keys(live.paths).filter((p) => p.startsWith('/admin')), [], 'no /admin path')
  t.equal((await fetch(gw.url + '/admin/tokens')).status, 404, 'which would answer 404')
  t.notOk(live.tags.some((tag) => tag.name === 'admin'), 'no admin tag')
  t.notOk('adminToken' in live.components.securitySchemes, 'no adminToken security scheme')
  await SwaggerParser.validate(structuredClone(live) as never)
  for (const p of Object.keys(live.paths)) t.same(live.paths[p], doc.paths[p], `${p}: as in the checked-in document`)
})
