// Configuration (docs/configuration.md): loadConfig table-driven, then `serve` with a bad environment for real.
import t from 'tap'
import { loadConfig, ConfigError, type Config } from '../../src/lib/config.js'
import { spawnServe, exitWithin } from '../helpers/process.js'

const R = '/api=http://127.0.0.1:3001'

t.test('defaults', async (t) => {
  const c = loadConfig({ ROUTES: R })
  t.same(c, {
    port: 8080,
    host: '0.0.0.0',
    management: null,
    redisUrl: 'redis://127.0.0.1:6379',
    redisClusterNodes: null,
    redisKeyPrefix: 'portcullis:',
    redisCommandTimeoutMs: 250,
    routes: [{ prefix: '/api', upstream: 'http://127.0.0.1:3001', timeoutMs: 30000 }],
    rateLimitWindowSeconds: 60,
    upstreamTimeoutMs: 30000,
    clientBodyTimeoutMs: 30000,
    upstreamMaxConnections: 512,
    maxInFlightPerToken: 256,
    circuit: { failureThreshold: 5, cooldownMs: 10000 },
    adminToken: null,
    logLevel: 'info',
    logFormat: 'json',
    trustProxy: false,
    workers: 1,
    shutdownGraceMs: 10000,
    tls: null,
    pressure: { maxEventLoopDelayMs: 1000, maxEventLoopUtilization: 0, maxHeapUsedBytes: 0, maxRssBytes: 0 },
    websocket: { idleTimeoutMs: 300000, recheckSeconds: 30 }
  } satisfies Config)
  t.same(loadConfig({}, { requireRoutes: false }).routes, [], 'the token CLI needs no ROUTES')
  t.same(loadConfig({ ROUTES: R, UNKNOWN_THING: 'x', npm_config_x: 'y' }).port, 8080, 'unknown variables are ignored')
})

t.test('values are read and converted', async (t) => {
  const c = loadConfig({
    ROUTES: R,
    PORT: '9090',
    HOST: '127.0.0.1',
    REDIS_URL: 'rediss://user:pw@redis.example:6380/2',
    REDIS_KEY_PREFIX: 'pc:',
    RATE_LIMIT_WINDOW_SECONDS: '10',
    UPSTREAM_TIMEOUT_MS: '1500',
    ADMIN_TOKEN: 'a-long-admin-token-0123',
    LOG_LEVEL: 'warn',
    WORKERS: '3',
    SHUTDOWN_GRACE_MS: '500',
    CIRCUIT_FAILURE_THRESHOLD: '3',
    CIRCUIT_COOLDOWN_MS: '500',
    WEBSOCKET_IDLE_TIMEOUT_MS: '60000',
    WEBSOCKET_RECHECK_SECONDS: '5'
  })
  t.match(c, {
    port: 9090,
    host: '127.0.0.1',
    redisUrl: 'rediss://user:pw@redis.example:6380/2',
    redisKeyPrefix: 'pc:',
    rateLimitWindowSeconds: 10,
    upstreamTimeoutMs: 1500,
    adminToken: 'a-long-admin-token-0123',
    logLevel: 'warn',
    workers: 3,
    shutdownGraceMs: 500,
    circuit: { failureThreshold: 3, cooldownMs: 500 },
    websocket: { idleTimeoutMs: 60000, recheckSeconds: 5 }
  })
  t.equal(c.routes[0]?.timeoutMs, 1500, 'UPSTREAM_TIMEOUT_MS is the default route timeout')
  t.ok(loadConfig({ ROUTES: R, WORKERS: 'auto' }).workers >= 1)
  t.same(loadConfig({ ROUTES: R, TLS_CERT_FILE: '/c.pem', TLS_KEY_FILE: '/k.pem' }).tls, { certFile: '/c.pem', keyFile: '/k.pem' }, 'TLS files')
  t.same(loadConfig({ ROUTES: R, CIRCUIT_FAILURE_THRESHOLD: '0' }).circuit, { failureThreshold: 0, cooldownMs: 10000 }, '0 turns the breaker off')
  t.match(loadConfig({ ROUTES: R, CLIENT_BODY_TIMEOUT_MS: '5000', UPSTREAM_MAX_CONNECTIONS: '64', MAX_IN_FLIGHT_PER_TOKEN: '16' }),
    { clientBodyTimeoutMs: 5000, upstreamMaxConnections: 64, maxInFlightPerToken: 16 })
  t.equal(loadConfig({ ROUTES: R, UPSTREAM_MAX_CONNECTIONS: '1', MAX_IN_FLIGHT_PER_TOKEN: '0' }).maxInFlightPerToken, 0, '0 turns the bound off, whatever the pool')
})

t.test('MANAGEMENT_PORT and MANAGEMENT_HOST', async (t) => {
  t.same(loadConfig({ ROUTES: R, MANAGEMENT_PORT: '9090' }).management, { port: 9090, host: '127.0.0.1' }, 'loopback by default')
  t.same(loadConfig({ ROUTES: R, MANAGEMENT_PORT: '9090', MANAGEMENT_HOST: '0.0.0.0' }).management, { port: 9090, host: '0.0.0.0' })
  t.equal(loadConfig({ ROUTES: R, MANAGEMENT_PORT: '' }).management, null, 'empty = unset, not port 0')
  t.equal(loadConfig({ ROUTES: R, MANAGEMENT_HOST: '0.0.0.0' }).management, null, 'a host alone changes nothing')
})

t.test('JSON ROUTES may override the circuit breaker per route; absent fields stay absent', async (t) => {
  const routes = loadConfig({
    ROUTES: '[{"prefix":"/a","upstream":"http://h:1","circuitFailureThreshold":3,"circuitCooldownMs":500},' +
      '{"prefix":"/b","upstream":"http://h:2","circuitFailureThreshold":0},{"prefix":"/c","upstream":"http://h:3","circuitCooldownMs":1}]',
    CIRCUIT_FAILURE_THRESHOLD: '7'
  }).routes
  t.same(routes, [
    { prefix: '/a', upstream: 'http://h:1', timeoutMs: 30000, circuitFailureThreshold: 3, circuitCooldownMs: 500 },
    { prefix: '/b', upstream: 'http://h:2', timeoutMs: 30000, circuitFailureThreshold: 0 },
    { prefix: '/c', upstream: 'http://h:3', timeoutMs: 30000, circuitCooldownMs: 1 }
  ])
})

t.test('ROUTES, both forms', async (t) => {
  const rows: Array<[string, Array<{ prefix: string, upstream: string, timeoutMs: number }>]> = [
    ['/api/v1/users=http://10.0.0.5:3000,/api/v1/products=http://10.0.0.6:3000', [
      { prefix: '/api/v1/users', upstream: 'http://10.0.0.5:3000', timeoutMs: 30000 },
      { prefix: '/api/v1/products', upstream: 'http://10.0.0.6:3000', timeoutMs: 30000 }]],
    [' /a/ = https://svc.example/ , ', [{ prefix: '/a', upstream: 'https://svc.example', timeoutMs: 30000 }]],
    ['[{"prefix":"/api/v1/users","upstream":"http://127.0.0.1:3001","timeoutMs":5000},{"prefix":"/b","upstream":"http://h:1"}]', [
      { prefix: '/api/v1/users', upstream: 'http://127.0.0.1:3001', timeoutMs: 5000 },
      { prefix: '/b', upstream: 'http://h:1', timeoutMs: 30000 }]],
    ['  [{"prefix":"/x","upstream":"http://[::1]:8080"}]', [{ prefix: '/x', upstream: 'http://[::1]:8080', timeoutMs: 30000 }]]
  ]
  for (const [routes, expected] of rows) t.same(loadConfig({ ROUTES: routes }).routes, expected, routes)
})

t.test('TRUST_PROXY forms', async (t) => {
  const rows: Array<[string, Config['trustProxy']]> = [
    ['false', false], ['FALSE', false], ['0', false], ['', false], ['true', true], [' True ', true], ['2', 2],
    ['10.0.0.0/8', ['10.0.0.0/8']], ['10.0.0.1, 192.168.0.0/16,::1,fd00::/8', ['10.0.0.1', '192.168.0.0/16', '::1', 'fd00::/8']]
  ]
  for (const [raw, expected] of rows) t.same(loadConfig({ ROUTES: R, TRUST_PROXY: raw }).trustProxy, expected, JSON.stringify(raw))
})

t.test('REDIS_CLUSTER_NODES parsing', async (t) => {
  t.equal(loadConfig({ ROUTES: R }).redisClusterNodes, null)
  t.equal(loadConfig({ ROUTES: R, REDIS_CLUSTER_NODES: ' ' }).redisClusterNodes, null)
  t.same(loadConfig({ ROUTES: R, REDIS_CLUSTER_NODES: 'redis-0:7000, 10.0.0.2:7001,[::1]:7002' }).redisClusterNodes,
    [{ host: 'redis-0', port: 7000 }, { host: '10.0.0.2', port: 7001 }, { host: '::1', port: 7002 }])
})

// [case, environment on top of a valid ROUTES, variable the message must start with, text it must contain]
const INVALID: Array<[string, Record<string, string>, string, RegExp]> = [
  ['missing ROUTES', { ROUTES: '' }, 'ROUTES', /required/],
  ['ROUTES of blanks', { ROUTES: '   ' }, 'ROUTES', /required/],
  ['ROUTES of commas', { ROUTES: ',,' }, 'ROUTES', /no routes/],
  ['entry without =', { ROUTES: '/api' }, 'ROUTES', /\/prefix=http/],
  ['upstream not a URL', { ROUTES: '/api=not a url' }, 'ROUTES', /not an absolute URL/],
  ['ftp upstream', { ROUTES: '/api=ftp://files.example' }, 'ROUTES', /http:\/\/ or https:\/\//],
  ['upstream with a path', { ROUTES: '/api=http://h:1/base' }, 'ROUTES', /origin/],
  ['upstream with a query', { ROUTES: '/api=http://h:1/?x=1' }, 'ROUTES', /origin/],
  ['upstream with credentials', { ROUTES: '/api=http://u:p@h:1' }, 'ROUTES', /credentials/],
  ['prefix without /', { ROUTES: 'api=http://h:1' }, 'ROUTES', /must start with \//],
  ['prefix /', { ROUTES: '/=http://h:1' }, 'ROUTES', /gateway's own paths/],
  ['prefix //', { ROUTES: '//=http://h:1' }, 'ROUTES', /gateway's own paths/],
  ['prefix /healthz', { ROUTES: '/healthz=http://h:1' }, 'ROUTES', /overlaps the gateway's own path \/healthz/],
  ['prefix /readyz/', { ROUTES: '/readyz/=http://h:1' }, 'ROUTES', /\/readyz/],
  ['prefix /metrics', { ROUTES: '/metrics=http://h:1' }, 'ROUTES', /\/metrics/],
  ['prefix /admin/x', { ROUTES: '/admin/x=http://h:1' }, 'ROUTES', /overlaps the gateway's own path \/admin/],
  ['prefix /docs', { ROUTES: '/docs=http://h:1' }, 'ROUTES', /\/docs/],
  ['prefix /docs/json', { ROUTES: '/docs/json=http://h:1' }, 'ROUTES', /\/docs/],
  ['prefix with ..', { ROUTES: '/a/../b=http://h:1' }, 'ROUTES', /\.\. segment/],
  ['prefix with //', { ROUTES: '/a//b=http://h:1' }, 'ROUTES', /empty/],
  ['prefix with %', { ROUTES: '/a%2Fb=http://h:1' }, 'ROUTES', /unreserved/],
  ['duplicate prefixes', { ROUTES: '/a=http://h:1,/b=http://h:2,/a/=http://h:3' }, 'ROUTES', /twice/],
  ['bad JSON', { ROUTES: '[{"prefix":"/a",' }, 'ROUTES', /not valid JSON/],
  ['JSON not an array of objects', { ROUTES: '["/a"]' }, 'ROUTES', /must be an object/],
  ['JSON unknown field', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","timeout":5}]' }, 'ROUTES', /unknown field "timeout"/],
  ['JSON missing upstream', { ROUTES: '[{"prefix":"/a"}]' }, 'ROUTES', /"upstream"/],
  ['timeoutMs 0', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","timeoutMs":0}]' }, 'ROUTES', /timeoutMs/],
  ['timeoutMs 1.5', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","timeoutMs":1.5}]' }, 'ROUTES', /timeoutMs/],
  ['timeoutMs as text', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","timeoutMs":"300"}]' }, 'ROUTES', /timeoutMs/],
  ['circuitFailureThreshold -1', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","circuitFailureThreshold":-1}]' }, 'ROUTES', /circuitFailureThreshold of \/a must be an integer ≥ 0/],
  ['circuitFailureThreshold 2.5', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","circuitFailureThreshold":2.5}]' }, 'ROUTES', /circuitFailureThreshold/],
  ['circuitFailureThreshold as text', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","circuitFailureThreshold":"3"}]' }, 'ROUTES', /circuitFailureThreshold/],
  ['circuitCooldownMs 0', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","circuitCooldownMs":0}]' }, 'ROUTES', /circuitCooldownMs of \/a must be a positive integer/],
  ['circuitCooldownMs null', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","circuitCooldownMs":null}]' }, 'ROUTES', /circuitCooldownMs/],
  ['JSON misspelt circuit field', { ROUTES: '[{"prefix":"/a","upstream":"http://h:1","circuitThreshold":3}]' }, 'ROUTES', /unknown field "circuitThreshold"/],
  ['PORT=abc', { PORT: 'abc' }, 'PORT', /integer/],
  ['MANAGEMENT_PORT=metrics', { MANAGEMENT_PORT: 'metrics' }, 'MANAGEMENT_PORT', /integer/],
  ['MANAGEMENT_PORT=70000', { MANAGEMENT_PORT: '70000' }, 'MANAGEMENT_PORT', /65535/],
  ['MANAGEMENT_PORT=PORT', { PORT: '8080', MANAGEMENT_PORT: '8080' }, 'MANAGEMENT_PORT', /must differ from PORT/],
  ['PORT=70000', { PORT: '70000' }, 'PORT', /65535/],
  ['WORKERS=0', { WORKERS: '0' }, 'WORKERS', /positive integer or "auto"/],
  ['WORKERS=two', { WORKERS: 'two' }, 'WORKERS', /positive integer or "auto"/],
  ['LOG_LEVEL=loud', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /one of fatal, error, warn, info, debug, trace, silent/],
  ['REDIS_URL=http://', { REDIS_URL: 'http://127.0.0.1:6379' }, 'REDIS_URL', /must start with redis:\/\/ or rediss:\/\//],
  ['REDIS_URL port with a letter O', { REDIS_URL: 'redis://127.0.0.1:2O379' }, 'REDIS_URL', /is not a valid URL: "redis:\/\/127\.0\.0\.1:2O379"/],
  ['REDIS_URL port too big', { REDIS_URL: 'redis://127.0.0.1:70000' }, 'REDIS_URL', /is not a valid URL/],
  ['REDIS_URL bad, password masked', { REDIS_URL: 'redis://u:hunter2@h:x' }, 'REDIS_URL', /"redis:\/\/u:\*\*\*@h:x"/],
  ['REDIS_URL without host', { REDIS_URL: 'redis://' }, 'REDIS_URL', /not a valid URL|has no host/],
  ['REDIS_URL with a path', { REDIS_URL: 'redis://h:6379/cache' }, 'REDIS_URL', /not a database number/],
  ['REDIS_KEY_PREFIX with a hash tag', { REDIS_KEY_PREFIX: 'a{b}:' }, 'REDIS_KEY_PREFIX', /must not contain \{, \} or whitespace/],
  ['REDIS_KEY_PREFIX with a space', { REDIS_KEY_PREFIX: 'a b' }, 'REDIS_KEY_PREFIX', /whitespace/],
  ['REDIS_COMMAND_TIMEOUT_MS=0', { REDIS_COMMAND_TIMEOUT_MS: '0' }, 'REDIS_COMMAND_TIMEOUT_MS', />= 1/],
  ['REDIS_COMMAND_TIMEOUT_MS=fast', { REDIS_COMMAND_TIMEOUT_MS: 'fast' }, 'REDIS_COMMAND_TIMEOUT_MS', /integer/],
  ['HOST empty', { HOST: '' }, 'HOST', /fewer than 1/],
  ['PORT empty', { PORT: '' }, 'PORT', /integer/],
  ['PORT=-1', { PORT: '-1' }, 'PORT', />= 0/],
  ['LOG_FORMAT=text', { LOG_FORMAT: 'text' }, 'LOG_FORMAT', /must be one of json, pretty$/],
  ['LOG_LEVEL=INFO', { LOG_LEVEL: 'INFO' }, 'LOG_LEVEL', /one of fatal/],
  ['ADMIN_TOKEN with a space', { ADMIN_TOKEN: 'a long admin token with spaces' }, 'ADMIN_TOKEN', /printable ASCII without spaces/],
  ['RATE_LIMIT_WINDOW_SECONDS=0', { RATE_LIMIT_WINDOW_SECONDS: '0' }, 'RATE_LIMIT_WINDOW_SECONDS', />= 1/],
  ['PRESSURE_MAX_EVENT_LOOP_DELAY_MS=-5', { PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '-5' }, 'PRESSURE_MAX_EVENT_LOOP_DELAY_MS', />= 0/],
  ['PRESSURE_MAX_EVENT_LOOP_UTILIZATION=2', { PRESSURE_MAX_EVENT_LOOP_UTILIZATION: '2' }, 'PRESSURE_MAX_EVENT_LOOP_UTILIZATION', /<= 1/],
  ['PRESSURE_MAX_EVENT_LOOP_UTILIZATION=most', { PRESSURE_MAX_EVENT_LOOP_UTILIZATION: 'most' }, 'PRESSURE_MAX_EVENT_LOOP_UTILIZATION', /number/],
  ['PRESSURE_MAX_HEAP_USED_BYTES=1GB', { PRESSURE_MAX_HEAP_USED_BYTES: '1GB' }, 'PRESSURE_MAX_HEAP_USED_BYTES', /integer/],
  ['PRESSURE_MAX_RSS_BYTES=-1', { PRESSURE_MAX_RSS_BYTES: '-1' }, 'PRESSURE_MAX_RSS_BYTES', />= 0/],
  ['SHUTDOWN_GRACE_MS=soon', { SHUTDOWN_GRACE_MS: 'soon' }, 'SHUTDOWN_GRACE_MS', /integer/],
  ['SHUTDOWN_GRACE_MS=-1', { SHUTDOWN_GRACE_MS: '-1' }, 'SHUTDOWN_GRACE_MS', />= 0/],
  ['UPSTREAM_TIMEOUT_MS=0', { UPSTREAM_TIMEOUT_MS: '0' }, 'UPSTREAM_TIMEOUT_MS', />= 1/],
  ['CIRCUIT_FAILURE_THRESHOLD=-1', { CIRCUIT_FAILURE_THRESHOLD: '-1' }, 'CIRCUIT_FAILURE_THRESHOLD', />= 0/],
  ['CIRCUIT_FAILURE_THRESHOLD=five', { CIRCUIT_FAILURE_THRESHOLD: 'five' }, 'CIRCUIT_FAILURE_THRESHOLD', /integer/],
  ['CIRCUIT_COOLDOWN_MS=0', { CIRCUIT_COOLDOWN_MS: '0' }, 'CIRCUIT_COOLDOWN_MS', />= 1/],
  ['CIRCUIT_COOLDOWN_MS=10s', { CIRCUIT_COOLDOWN_MS: '10s' }, 'CIRCUIT_COOLDOWN_MS', /integer/],
  ['RATE_LIMIT_WINDOW_SECONDS=1m', { RATE_LIMIT_WINDOW_SECONDS: '1m' }, 'RATE_LIMIT_WINDOW_SECONDS', /integer/],
  ['short ADMIN_TOKEN', { ADMIN_TOKEN: 'short' }, 'ADMIN_TOKEN', /16/],
  ['TRUST_PROXY=yes', { TRUST_PROXY: 'yes' }, 'TRUST_PROXY', /hop count/],
  ['TRUST_PROXY=1.2.3', { TRUST_PROXY: '1.2.3' }, 'TRUST_PROXY', /addresses/],
  ['TRUST_PROXY=10.0.0.0/33', { TRUST_PROXY: '10.0.0.0/33' }, 'TRUST_PROXY', /addresses/],
  ['TRUST_PROXY=::1/129', { TRUST_PROXY: '::1/129' }, 'TRUST_PROXY', /addresses/],
  ['TRUST_PROXY=-1', { TRUST_PROXY: '-1' }, 'TRUST_PROXY', /hop count/],
  ['REDIS_CLUSTER_NODES without port', { REDIS_CLUSTER_NODES: 'redis-0' }, 'REDIS_CLUSTER_NODES', /host:port/],
  ['REDIS_CLUSTER_NODES port 0', { REDIS_CLUSTER_NODES: 'a:7000,b:0' }, 'REDIS_CLUSTER_NODES', /"b:0"/],
  ['REDIS_CLUSTER_NODES port 70000', { REDIS_CLUSTER_NODES: 'a:70000' }, 'REDIS_CLUSTER_NODES', /host:port/],
  ['WEBSOCKET_IDLE_TIMEOUT_MS=0', { WEBSOCKET_IDLE_TIMEOUT_MS: '0' }, 'WEBSOCKET_IDLE_TIMEOUT_MS', />= 1/],
  ['WEBSOCKET_IDLE_TIMEOUT_MS=5m', { WEBSOCKET_IDLE_TIMEOUT_MS: '5m' }, 'WEBSOCKET_IDLE_TIMEOUT_MS', /integer/],
  ['WEBSOCKET_IDLE_TIMEOUT_MS over a timer', { WEBSOCKET_IDLE_TIMEOUT_MS: '2147483648' }, 'WEBSOCKET_IDLE_TIMEOUT_MS', /<= 2147483647/],
  ['WEBSOCKET_RECHECK_SECONDS=0', { WEBSOCKET_RECHECK_SECONDS: '0' }, 'WEBSOCKET_RECHECK_SECONDS', />= 1/],
  ['WEBSOCKET_RECHECK_SECONDS=0.5', { WEBSOCKET_RECHECK_SECONDS: '0.5' }, 'WEBSOCKET_RECHECK_SECONDS', /integer/],
  ['WEBSOCKET_RECHECK_SECONDS over a day', { WEBSOCKET_RECHECK_SECONDS: '86401' }, 'WEBSOCKET_RECHECK_SECONDS', /<= 86400/],
  ['REDIS_CLUSTER_NODES empty entry', { REDIS_CLUSTER_NODES: 'a:1,,b:2' }, 'REDIS_CLUSTER_NODES', /host:port/],
  ['CLIENT_BODY_TIMEOUT_MS=0', { CLIENT_BODY_TIMEOUT_MS: '0' }, 'CLIENT_BODY_TIMEOUT_MS', />= 1/],
  ['CLIENT_BODY_TIMEOUT_MS=30s', { CLIENT_BODY_TIMEOUT_MS: '30s' }, 'CLIENT_BODY_TIMEOUT_MS', /integer/],
  ['UPSTREAM_MAX_CONNECTIONS=0', { UPSTREAM_MAX_CONNECTIONS: '0' }, 'UPSTREAM_MAX_CONNECTIONS', />= 1/],
  ['UPSTREAM_MAX_CONNECTIONS=many', { UPSTREAM_MAX_CONNECTIONS: 'many' }, 'UPSTREAM_MAX_CONNECTIONS', /integer/],
  ['MAX_IN_FLIGHT_PER_TOKEN=-1', { MAX_IN_FLIGHT_PER_TOKEN: '-1' }, 'MAX_IN_FLIGHT_PER_TOKEN', />= 0/],
  ['MAX_IN_FLIGHT_PER_TOKEN=1.5', { MAX_IN_FLIGHT_PER_TOKEN: '1.5' }, 'MAX_IN_FLIGHT_PER_TOKEN', /integer/],
  ['MAX_IN_FLIGHT_PER_TOKEN not below the pool', { UPSTREAM_MAX_CONNECTIONS: '64', MAX_IN_FLIGHT_PER_TOKEN: '64' }, 'MAX_IN_FLIGHT_PER_TOKEN', /below UPSTREAM_MAX_CONNECTIONS \(64\)/],
  ['default MAX_IN_FLIGHT_PER_TOKEN above a small pool', { UPSTREAM_MAX_CONNECTIONS: '100' }, 'MAX_IN_FLIGHT_PER_TOKEN', /below UPSTREAM_MAX_CONNECTIONS \(100\).*or 0/],
  ['TLS_CERT_FILE alone', { TLS_CERT_FILE: '/etc/c.pem' }, 'TLS_KEY_FILE', /both or neither/],
  ['TLS_KEY_FILE alone', { TLS_KEY_FILE: '/etc/k.pem' }, 'TLS_CERT_FILE', /both or neither/],
  ['TLS_KEY_FILE blank', { TLS_CERT_FILE: '/etc/c.pem', TLS_KEY_FILE: ' ' }, 'TLS_KEY_FILE', /both or neither/]
]

t.test(`${INVALID.length} invalid configurations, each a ConfigError naming its variable`, async (t) => {
  for (const [name, env, variable, text] of INVALID) {
    let err: unknown = null
    try {
      loadConfig({ ROUTES: R, ...env })
    } catch (e) {
      err = e
    }
    t.ok(err instanceof ConfigError, `${name}: a ConfigError`)
    const e = err as ConfigError
    t.equal(e.variable, variable, `${name}: names ${variable}`)
    t.ok(e.message.startsWith(variable + ' '), `${name}: message starts with the variable (${e.message})`)
    t.match(e.message, text, `${name}: says what is wrong`)
    t.notOk(e.message.includes('\n'), `${name}: one line`)
  }
})

t.test('serve with a bad environment exits 1 with one stderr line naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ ROUTES: R, PORT: 'abc' }, 'PORT'],
    [{}, 'ROUTES'],
    [{ ROUTES: '/healthz=http://127.0.0.1:1' }, 'ROUTES'],
    [{ ROUTES: R, LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ ROUTES: R, REDIS_URL: 'redis://127.0.0.1:2O379' }, 'REDIS_URL'],
    [{ ROUTES: R, LOG_FORMAT: 'yaml' }, 'LOG_FORMAT']
  ]
  // One after the other: six Node processes at once on a loaded 2-core machine took over 20 s.
  for (const [env, variable] of cases) {
    const p = spawnServe({ REDIS_URL: 'redis://127.0.0.1:1', ...env })
    const exit = await exitWithin(p, 20_000)
    if (exit === null) p.proc.kill('SIGKILL')
    t.same(exit, { code: 1, signal: null }, `${variable}: exit code 1`)
    const lines = p.stderr().split('\n').filter((l) => l !== '')
    t.equal(lines.length, 1, `${variable}: exactly one stderr line (${JSON.stringify(p.stderr())})`)
    t.match(lines[0], new RegExp(`\\b${variable}\\b`), `${variable}: the line names the variable`)
    t.equal(p.stdout(), '', `${variable}: nothing on stdout`)
  }
})
