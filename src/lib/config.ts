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
import { maskRedisUrl } from './redis-target.js'

export { ConfigError }

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const LogLevel = Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)))
/** LOG_FORMAT values: JSON lines for machines (default), one readable line per record for humans. */
export const LOG_FORMATS = ['json', 'pretty'] as const
const LogFormat = Type.Union(LOG_FORMATS.map((l) => Type.Literal(l)))

/**
 * How long an idle client connection stays open on every listener (src/app.ts): an HTTP/1.1
 * keep-alive connection between requests, and an HTTP/2 session with no frame either way
 * (Fastify's http2SessionTimeout: GOAWAY, open streams finish). Above the 60 s idle timeout of
 * common load balancers, so they close first.
 */
export const IDLE_CONNECTION_TIMEOUT_MS = 72_000
/** Variables whose value is one of a list: Ajv's complaint ("must be equal to constant") names none. */
const CHOICES: Record<string, readonly string[]> = { LOG_LEVEL: LOG_LEVELS, LOG_FORMAT: LOG_FORMATS }
/** What a `pattern` means, in words; Ajv would print the regular expression. */
const PATTERN_MEANS: Record<string, string> = {
  REDIS_URL: 'must start with redis:// or rediss://',
  REDIS_KEY_PREFIX: 'must not contain {, } or whitespace (the gateway adds its own hash tags)',
  ADMIN_TOKEN: 'must be printable ASCII without spaces',
  WORKERS: 'must be a positive integer or "auto"'
}

/** The environment variables of docs/configuration.md, plus a few operational knobs documented in docs/configuration.md. */
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
  CLIENT_BODY_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 30000 }),
  UPSTREAM_MAX_CONNECTIONS: Type.Integer({ minimum: 1, default: 512 }),
  MAX_IN_FLIGHT_PER_TOKEN: Type.Integer({ minimum: 0, default: 256 }),
  CIRCUIT_FAILURE_THRESHOLD: Type.Integer({ minimum: 0, default: 5 }),
  CIRCUIT_COOLDOWN_MS: Type.Integer({ minimum: 1, default: 10000 }),
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16, pattern: '^[\\x21-\\x7e]+$' })),
  LOG_LEVEL: Type.Unsafe<string>({ ...LogLevel, default: 'info' }),
  LOG_FORMAT: Type.Unsafe<'json' | 'pretty'>({ ...LogFormat, default: 'json' }),
  TRUST_PROXY: Type.String({ default: 'false' }),
  WORKERS: Type.String({ default: '1', pattern: '^(auto|[1-9][0-9]{0,2})$' }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10000 }),
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, default: 1000 }),
  PRESSURE_MAX_EVENT_LOOP_UTILIZATION: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
  PRESSURE_MAX_HEAP_USED_BYTES: Type.Integer({ minimum: 0, default: 0 }),
  PRESSURE_MAX_RSS_BYTES: Type.Integer({ minimum: 0, default: 0 }),
  WEBSOCKET_IDLE_TIMEOUT_MS: Type.Integer({ minimum: 1, maximum: 2147483647, default: 300000 }),
  WEBSOCKET_RECHECK_SECONDS: Type.Integer({ minimum: 1, maximum: 86400, default: 30 }),
  TLS_CERT_FILE: Type.Optional(Type.String()),
  TLS_KEY_FILE: Type.Optional(Type.String())
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
  /** No request body byte for this long: the upstream request is aborted, the client gets 408. */
  clientBodyTimeoutMs: number
  /** Connections per upstream origin (one pool per origin, per worker). */
  upstreamMaxConnections: number
  /** Requests one token may have in flight on this process; 0 = no bound. */
  maxInFlightPerToken: number
  /** Defaults of every route's breaker; a JSON ROUTES entry may override them. */
  circuit: { failureThreshold: number, cooldownMs: number }
  adminToken: string | null
  logLevel: string
  /** `json` (one JSON object per line) or `pretty` (for a terminal); both carry ISO 8601 times. */
  logFormat: 'json' | 'pretty'
  trustProxy: boolean | number | string[]
  workers: number
  shutdownGraceMs: number
  /** PEM files that make the proxy listener HTTPS with HTTP/2 (src/tls.ts reads them); null = plain HTTP. */
  tls: { certFile: string, keyFile: string } | null
  pressure: {
    maxEventLoopDelayMs: number
    maxEventLoopUtilization: number
    maxHeapUsedBytes: number
    maxRssBytes: number
  }
  /** WebSocket tunnels: closed after this long without a byte either way; token re-checked this often. */
  websocket: { idleTimeoutMs: number, recheckSeconds: number }
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
  // One token must not be able to hold every connection of a route's pool (docs/configuration.md).
  if (e.MAX_IN_FLIGHT_PER_TOKEN >= e.UPSTREAM_MAX_CONNECTIONS) {
    throw new ConfigError('MAX_IN_FLIGHT_PER_TOKEN', `must be below UPSTREAM_MAX_CONNECTIONS (${e.UPSTREAM_MAX_CONNECTIONS}), so one token cannot fill an upstream's pool, or 0 for no bound`)
  }
  return {
    port: e.PORT,
    host: e.HOST,
    management: parseManagement(e),
    redisUrl: checkRedisUrl(e.REDIS_URL),
    redisClusterNodes: parseClusterNodes(e.REDIS_CLUSTER_NODES),
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    routes: e.ROUTES === undefined || e.ROUTES.trim() === '' ? [] : parseRoutes(e.ROUTES, e.UPSTREAM_TIMEOUT_MS),
    rateLimitWindowSeconds: e.RATE_LIMIT_WINDOW_SECONDS,
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    clientBodyTimeoutMs: e.CLIENT_BODY_TIMEOUT_MS,
    upstreamMaxConnections: e.UPSTREAM_MAX_CONNECTIONS,
    maxInFlightPerToken: e.MAX_IN_FLIGHT_PER_TOKEN,
    circuit: { failureThreshold: e.CIRCUIT_FAILURE_THRESHOLD, cooldownMs: e.CIRCUIT_COOLDOWN_MS },
    adminToken: e.ADMIN_TOKEN ?? null,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    workers: e.WORKERS === 'auto' ? availableParallelism() : Number(e.WORKERS),
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    tls: parseTlsFiles(e.TLS_CERT_FILE, e.TLS_KEY_FILE),
    pressure: {
      maxEventLoopDelayMs: e.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
      maxEventLoopUtilization: e.PRESSURE_MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: e.PRESSURE_MAX_HEAP_USED_BYTES,
      maxRssBytes: e.PRESSURE_MAX_RSS_BYTES
    },
    websocket: { idleTimeoutMs: e.WEBSOCKET_IDLE_TIMEOUT_MS, recheckSeconds: e.WEBSOCKET_RECHECK_SECONDS }
  }
}

interface AjvError { instancePath?: string, keyword?: string, message?: string, params?: Record<string, unknown> }

function fromAjv (err: unknown): ConfigError {
  const first = (err as { errors?: AjvError[] }).errors?.[0]
  if (first === undefined) return new ConfigError('configuration', String((err as Error).message))
  const variable = first.keyword === 'required'
    ? String(first.params?.missingProperty)
    : (first.instancePath ?? '').replace(/^\//, '') || 'configuration'
  // A union of literals: Ajv's first complaint is "must be equal to constant", for any variable.
  if (first.keyword === 'enum' || first.keyword === 'anyOf' || first.keyword === 'const') {
    return new ConfigError(variable, `must be one of ${(CHOICES[variable] ?? []).join(', ')}`)
  }
  if (first.keyword === 'pattern' && PATTERN_MEANS[variable] !== undefined) {
    return new ConfigError(variable, PATTERN_MEANS[variable])
  }
  return new ConfigError(variable, first.message ?? 'is invalid')
}

/** MANAGEMENT_PORT set → its listener; it may not share PORT (0 = any free port, for tests). */
function parseManagement (e: Env): Config['management'] {
  if (e.MANAGEMENT_PORT === undefined) return null
  if (e.MANAGEMENT_PORT !== 0 && e.MANAGEMENT_PORT === e.PORT) {
    throw new ConfigError('MANAGEMENT_PORT', `must differ from PORT (${e.PORT}): the management listener is a separate port`)
  }
  return { port: e.MANAGEMENT_PORT, host: e.MANAGEMENT_HOST }
}

/**
 * REDIS_URL must be a URL ioredis can use: checked here, or a typo (`2O379` with a letter O) would
 * surface later as a bare "Invalid URL" naming nothing. The value is quoted with its password masked.
 */
function checkRedisUrl (raw: string): string {
  const shown = JSON.stringify(maskRedisUrl(raw))
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new ConfigError('REDIS_URL', `is not a valid URL: ${shown}; expected redis[s]://[user:password@]host[:port][/db]`)
  }
  if (u.hostname === '') throw new ConfigError('REDIS_URL', `has no host: ${shown}`)
  if (!/^(\/|\/\d{1,5})?$/.test(u.pathname)) {
    throw new ConfigError('REDIS_URL', `has a path that is not a database number: ${shown}; expected /0, /1 …`)
  }
  return raw
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

/** Both TLS variables or neither: one alone would silently serve plain HTTP where HTTPS was meant. */
function parseTlsFiles (cert: string | undefined, key: string | undefined): Config['tls'] {
  const certFile = cert?.trim() ?? ''
  const keyFile = key?.trim() ?? ''
  if (certFile === '' && keyFile === '') return null
  if (keyFile === '') throw new ConfigError('TLS_KEY_FILE', 'is required when TLS_CERT_FILE is set (both or neither)')
  if (certFile === '') throw new ConfigError('TLS_CERT_FILE', 'is required when TLS_KEY_FILE is set (both or neither)')
  return { certFile, keyFile }
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
