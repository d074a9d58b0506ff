/**
 * Configuration comes from the environment only (plus an optional `.env`), validated once at start.
 * Every problem becomes a ConfigError whose message is one line naming the variable.
 */
import envSchema from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'
import { availableParallelism } from 'node:os'
import { isIP } from 'node:net'
import type { RouteConfig } from './route-table.js'
import { parseRoutes } from './routes-config.js'
import { ConfigError } from './config-error.js'

export { ConfigError }

const LogLevel = Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)))

/** The environment variables of SPEC §2, plus a few operational knobs documented in the README. */
export const EnvSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  MANAGEMENT_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  MANAGEMENT_HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  REDIS_URL: Type.String({ pattern: '^rediss?://', default: 'redis://127.0.0.1:6379' }),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String()),
  REDIS_KEY_PREFIX: Type.String({ default: 'portcullis:', pattern: '^[^{}\\s]*$' }),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 250 }),
  ROUTES: Type.Optional(Type.String()),
  RATE_LIMIT_WINDOW_SECONDS: Type.Integer({ minimum: 1, default: 60 }),
  UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 30000 }),
  CIRCUIT_FAILURE_THRESHOLD: Type.Integer({ minimum: 0, default: 5 }),
  CIRCUIT_COOLDOWN_MS: Type.Integer({ minimum: 1, default: 10000 }),
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16, pattern: '^[\\x21-\\x7e]+$' })),
  LOG_LEVEL: Type.Unsafe<string>({ ...LogLevel, default: 'info' }),
  TRUST_PROXY: Type.String({ default: 'false' }),
  WORKERS: Type.String({ default: '1', pattern: '^(auto|[1-9][0-9]{0,2})$' }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10000 }),
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, default: 1000 }),
  PRESSURE_MAX_EVENT_LOOP_UTILIZATION: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
  PRESSURE_MAX_HEAP_USED_BYTES: Type.Integer({ minimum: 0, default: 0 }),
  PRESSURE_MAX_RSS_BYTES: Type.Integer({ minimum: 0, default: 0 })
})
type Env = Static<typeof EnvSchema>

/** The validated configuration the app, the server and the CLI are built from. */
export interface Config {
  port: number
  host: string
  /** The listener of /metrics, /docs and /admin (plugins/management.ts); null = all on PORT. */
  management: { port: number, host: string } | null
  redisUrl: string
  redisClusterNodes: Array<{ host: string, port: number }> | null
  redisKeyPrefix: string
  redisCommandTimeoutMs: number
  routes: RouteConfig[]
  rateLimitWindowSeconds: number
  upstreamTimeoutMs: number
  /** Defaults of every route's breaker; a JSON ROUTES entry may override them. */
  circuit: { failureThreshold: number, cooldownMs: number }
  adminToken: string | null
  logLevel: string
  trustProxy: boolean | number | string[]
  workers: number
  shutdownGraceMs: number
  pressure: {
    maxEventLoopDelayMs: number
    maxEventLoopUtilization: number
    maxHeapUsedBytes: number
    maxRssBytes: number
  }
}

export interface LoadOptions {
  /** `serve` needs ROUTES; the token CLI does not. */
  requireRoutes?: boolean
  /** Read `.env` from the working directory (values in `env` win). */
  dotenv?: boolean
}

/** Validates the environment into a Config, or throws a ConfigError. */
export function loadConfig (env: Record<string, string | undefined>, opts: LoadOptions = {}): Config {
  const { requireRoutes = true, dotenv = false } = opts
  const data: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined) data[k] = v
  // Ajv would coerce an empty value to port 0 (any free port): empty means unset here.
  if (data.MANAGEMENT_PORT?.trim() === '') delete data.MANAGEMENT_PORT
  let e: Env
  try {
    e = envSchema<Env>({ schema: structuredClone(EnvSchema), data, env: false, dotenv })
  } catch (err) {
    throw fromAjv(err)
  }
  if (requireRoutes && (e.ROUTES === undefined || e.ROUTES.trim() === '')) {
    throw new ConfigError('ROUTES', 'is required: e.g. ROUTES=/api/v1/users=http://127.0.0.1:3001')
  }
  return {
    port: e.PORT,
    host: e.HOST,
    management: parseManagement(e),
    redisUrl: e.REDIS_URL,
    redisClusterNodes: parseClusterNodes(e.REDIS_CLUSTER_NODES),
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    routes: e.ROUTES === undefined || e.ROUTES.trim() === '' ? [] : parseRoutes(e.ROUTES, e.UPSTREAM_TIMEOUT_MS),
    rateLimitWindowSeconds: e.RATE_LIMIT_WINDOW_SECONDS,
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    circuit: { failureThreshold: e.CIRCUIT_FAILURE_THRESHOLD, cooldownMs: e.CIRCUIT_COOLDOWN_MS },
    adminToken: e.ADMIN_TOKEN ?? null,
    logLevel: e.LOG_LEVEL,
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    workers: e.WORKERS === 'auto' ? availableParallelism() : Number(e.WORKERS),
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    pressure: {
      maxEventLoopDelayMs: e.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
      maxEventLoopUtilization: e.PRESSURE_MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: e.PRESSURE_MAX_HEAP_USED_BYTES,
      maxRssBytes: e.PRESSURE_MAX_RSS_BYTES
    }
  }
}

interface AjvError { instancePath?: string, keyword?: string, message?: string, params?: Record<string, unknown> }

function fromAjv (err: unknown): ConfigError {
  const first = (err as { errors?: AjvError[] }).errors?.[0]
  if (first === undefined) return new ConfigError('configuration', String((err as Error).message))
  const variable = first.keyword === 'required'
    ? String(first.params?.missingProperty)
    : (first.instancePath ?? '').replace(/^\//, '') || 'configuration'
  // LOG_LEVEL is a union of literals: Ajv's first complaint is "must be equal to constant".
  if (first.keyword === 'enum' || first.keyword === 'anyOf' || first.keyword === 'const') {
    return new ConfigError(variable, 'must be one of fatal, error, warn, info, debug, trace, silent')
  }
  const extra = first.keyword === 'pattern' && variable === 'WORKERS' ? ' (a positive integer or "auto")' : ''
  return new ConfigError(variable, `${first.message ?? 'is invalid'}${extra}`)
}

/** MANAGEMENT_PORT set → its listener; it may not share PORT (0 = any free port, for tests). */
function parseManagement (e: Env): Config['management'] {
  if (e.MANAGEMENT_PORT === undefined) return null
  if (e.MANAGEMENT_PORT !== 0 && e.MANAGEMENT_PORT === e.PORT) {
    throw new ConfigError('MANAGEMENT_PORT', `must differ from PORT (${e.PORT}): the management listener is a separate port`)
  }
  return { port: e.MANAGEMENT_PORT, host: e.MANAGEMENT_HOST }
}

/** `host:port,host:port` → nodes; unset or empty → null (use REDIS_URL). */
function parseClusterNodes (raw: string | undefined): Config['redisClusterNodes'] {
  if (raw === undefined || raw.trim() === '') return null
  return raw.split(',').map((item) => {
    const m = /^\s*([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})\s*$/.exec(item)
    const port = Number(m?.[2])
    if (m === null || port < 1 || port > 65535) {
      throw new ConfigError('REDIS_CLUSTER_NODES', `has an invalid entry "${item.trim()}": expected host:port`)
    }
    return { host: (m[1] ?? '').replace(/^\[|\]$/g, ''), port }
  })
}

/** Fastify `trustProxy`: true/false, a hop count, or a list of addresses/CIDRs. */
function parseTrustProxy (raw: string): Config['trustProxy'] {
  const v = raw.trim().toLowerCase()
  if (v === 'false' || v === '0' || v === '') return false
  if (v === 'true') return true
  if (/^[1-9][0-9]*$/.test(v)) return Number(v)
  const list = raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
  // Checked here: proxy-addr would otherwise throw at start, a stack trace instead of one clear line.
  if (list.length > 0 && list.every(isAddressOrCidr)) return list
  throw new ConfigError('TRUST_PROXY', 'must be true, false, a hop count, or a comma-separated list of addresses/CIDRs')
}

function isAddressOrCidr (entry: string): boolean {
  const [address = '', bits, extra] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || extra !== undefined) return false
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))
}
