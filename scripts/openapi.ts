/**
 * `npm run openapi`: writes openapi/openapi.json from the gateway itself, built by the same
 * buildApp as production with a fixed demo ROUTES, so the checked-in document is exactly what
 * `GET /docs/json` serves for those routes (test/openapi.test.ts holds the two together).
 *
 * The app needs a Redis to start: the one at REDIS_URL when set, else a private `redis-server`
 * from PATH on a free port, stopped afterwards. Nothing is written to that Redis.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { pathToFileURL } from 'node:url'
import { startGateway } from '../src/gateway-start.js'
import { loadConfig } from '../src/lib/config.js'
import { openapiText } from '../plugins/swagger.js'
import { redisForScript } from './private-redis.js'

/** Where the document is checked in, relative to the package root (npm runs scripts there). */
export const OPENAPI_FILE = 'openapi/openapi.json'

/** The route prefixes the checked-in document describes; upstream addresses never appear in it. */
export const OPENAPI_ROUTES = '/api/v1/users=http://127.0.0.1:3001,/api/v1/products=http://127.0.0.1:3002'

/**
 * The checked-in document is the full surface, admin API included: an instance without
 * ADMIN_TOKEN serves (and documents at /docs/json) everything but /admin. This value only turns
 * the admin routes on while the document is generated; it is never written anywhere.
 */
export const OPENAPI_ADMIN_TOKEN = 'openapi-generation-only-admin-token'

/** Builds the app for the demo routes against the Redis at `redisUrl` and returns the document text. */
export async function generateOpenapi (redisUrl: string): Promise<string> {
  const config = loadConfig({ ROUTES: OPENAPI_ROUTES, REDIS_URL: redisUrl, LOG_LEVEL: 'warn', ADMIN_TOKEN: OPENAPI_ADMIN_TOKEN }, { requireRoutes: true })
  const { app } = await startGateway(config, { wait: { timeoutMs: 5000 } })
  try {
    await app.ready()
    return openapiText(app)
  } finally {
    await app.close()
  }
}

/** Runs `fn` with REDIS_URL, or with a private redis-server that is killed afterwards. */
async function withRedis<T> (fn: (url: string) => Promise<T>): Promise<T> {
  const redis = await redisForScript({ url: process.env.REDIS_URL })
  try {
    return await fn(redis.url)
  } finally {
    await redis.close()
  }
}

async function main (): Promise<void> {
  const text = await withRedis(generateOpenapi)
  await mkdir(dirname(OPENAPI_FILE), { recursive: true })
  await writeFile(OPENAPI_FILE, text)
  process.stdout.write(`wrote ${OPENAPI_FILE} (${Buffer.byteLength(text)} bytes)\n`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(() => { process.exit(0) }, (err: unknown) => {
    process.stderr.write(`openapi: ${(err as Error).message}\n`)
    process.exit(1)
  })
}
