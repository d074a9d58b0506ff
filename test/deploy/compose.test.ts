// compose.yaml (docs/operations.md): `docker compose config` cannot run here (no Docker engine), so the
// file is parsed and what it says about the gateway is checked against the gateway's own code:
// env var names and values (src/lib/config.ts), ports, healthcheck paths (the registered routes),
// the Prometheus targets, and the demo upstream the routes point at, started for real.
import { test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { parse } from 'yaml'
import Fastify from 'fastify'
import { request } from 'undici'
import { EnvSchema, loadConfig } from '../../src/lib/config.js'
import healthRoutes from '../../routes/health.js'
import metricsRoutes from '../../routes/metrics.js'
import { freePort } from '../helpers/redis.js'

const root = new URL('../..', import.meta.url).pathname
interface Service {
  build?: string
  image?: string
  command?: string[]
  environment?: Record<string, string>
  ports?: string[]
  volumes?: string[]
  healthcheck?: { test: string[] }
  depends_on?: Record<string, { condition: string }>
  stop_grace_period?: string
  read_only?: boolean
  cap_drop?: string[]
}
// `merge: true`: the gateway replicas share one block through a YAML merge key, as Compose reads it.
const compose = parse(readFileSync(join(root, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, Service> }
const services = compose.services
const gateways = Object.entries(services).filter(([name]) => name.startsWith('gateway'))
const prometheus = parse(readFileSync(join(root, 'deploy', 'compose', 'prometheus.yml'), 'utf8')) as {
  scrape_configs: Array<{ metrics_path?: string, static_configs: Array<{ targets: string[] }> }>
}

/** The URL a `node -e fetch(…)` healthcheck requests. */
const healthUrl = (s: Service): URL => new URL(/fetch\('([^']+)'\)/.exec(s.healthcheck?.test.join(' ') ?? '')?.[1] ?? 'http://invalid')

test('Redis, two gateway replicas built from the Dockerfile, a demo upstream, Prometheus', async (t) => {
  t.same(Object.keys(services).sort(), ['gateway-1', 'gateway-2', 'prometheus', 'redis', 'upstream'])
  t.equal(gateways.length, 2)
  for (const [name, s] of gateways) {
    t.equal(s.build, '.', `${name} is built from the Dockerfile`)
    t.equal(s.depends_on?.redis?.condition, 'service_healthy', `${name} starts once Redis answers`)
    t.equal(s.read_only, true, `${name}: read-only root filesystem`)
    t.same(s.cap_drop, ['ALL'], `${name}: all capabilities dropped`)
  }
  for (const name of Object.keys(services)) {
    if (name !== 'prometheus') t.ok(services[name]?.healthcheck !== undefined, `${name} has a healthcheck`)
  }
})

test('gateway environment: names the gateway reads, values it accepts, ports and health paths it serves', async (t) => {
  const app = Fastify()
  await app.register(healthRoutes)
  await app.register(metricsRoutes)
  await app.ready()
  const known = new Set(Object.keys(EnvSchema.properties))
  for (const [name, s] of gateways) {
    const env = s.environment ?? {}
    for (const key of Object.keys(env)) t.ok(known.has(key), `${name}: ${key} is a variable the gateway reads`)
    const config = loadConfig(env) // a ConfigError names the variable if a value is invalid
    const redis = new URL(config.redisUrl)
    t.ok(services[redis.hostname] !== undefined, `${name}: REDIS_URL names the service ${redis.hostname}`)
    for (const route of config.routes) {
      const up = new URL(route.upstream)
      t.equal(up.port, services[up.hostname]?.environment?.PORT, `${name}: ${route.prefix} goes to ${up.hostname} on the port it listens on`)
    }
    const [, container] = (s.ports?.[0] ?? '').split(':')
    t.equal(Number(container), config.port, `${name}: the published container port is PORT`)
    const health = healthUrl(s)
    t.equal(Number(health.port), config.port, `${name}: the healthcheck asks PORT`)
    t.ok(app.hasRoute({ method: 'GET', url: health.pathname }), `${name}: ${health.pathname} is a route of the gateway`)
    const stopGrace = Number(/^(\d+)s$/.exec(s.stop_grace_period ?? '')?.[1])
    t.ok(stopGrace > config.shutdownGraceMs / 1000, `${name}: stop_grace_period ${stopGrace} s > SHUTDOWN_GRACE_MS`)
  }
  const hostPorts = gateways.map(([, s]) => (s.ports?.[0] ?? '').split(':')[0])
  t.equal(new Set(hostPorts).size, gateways.length, 'each replica on its own host port')

  // Prometheus scrapes every gateway replica on the port and path the gateway serves metrics on.
  const job = prometheus.scrape_configs[0]
  t.ok(app.hasRoute({ method: 'GET', url: job?.metrics_path ?? '/metrics' }), 'the metrics path is a route of the gateway')
  const targets = (job?.static_configs ?? []).flatMap((c) => c.targets).sort()
  const expected = gateways.map(([name, s]) => `${name}:${loadConfig(s.environment ?? {}).management?.port ?? 'unset'}`).sort()
  t.same(targets, expected, 'Prometheus scrapes every replica on its MANAGEMENT_PORT')
  for (const [name, s] of gateways) {
    const management = loadConfig(s.environment ?? {}).management
    t.equal(management?.host, '0.0.0.0', `${name}: the management listener is reachable from the Prometheus container`)
    const published = (s.ports ?? []).find((p) => p.endsWith(`:${management?.port ?? 'unset'}`))
    t.match(published, /^127\.0\.0\.1:\d+:\d+$/, `${name}: the management port is published on the host's loopback only`)
  }
  t.ok(services.prometheus?.volumes?.some((v) => v.startsWith('./deploy/compose/prometheus.yml:')), 'with deploy/compose/prometheus.yml')
  await app.close()
})

test('the demo upstream script serves its healthcheck path and echoes what it received', async (t) => {
  const s = services.upstream as Service
  const mount = s.volumes?.find((v) => v.startsWith('./deploy/compose/upstream.mjs:'))?.split(':')[1]
  t.same(s.command, ['node', mount], 'the upstream runs the mounted script')
  const port = await freePort()
  const child = spawn(process.execPath, [join(root, 'deploy', 'compose', 'upstream.mjs')], { env: { PORT: String(port) }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  await new Promise((resolve) => child.stdout.once('data', resolve))
  const health = await request(`http://127.0.0.1:${port}${healthUrl(s).pathname}`)
  t.equal(health.statusCode, 200, 'the healthcheck path answers 200')
  await health.body.dump()
  const echo = await request(`http://127.0.0.1:${port}/api/v1/users/1?x=1`, { method: 'POST', body: 'abc' })
  t.match(await echo.body.json(), { upstream: 'demo', method: 'POST', url: '/api/v1/users/1?x=1', bodyBytes: 3 })
  const exited = new Promise((resolve) => child.once('exit', (code) => { resolve(code) }))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM stops it at once')
})
