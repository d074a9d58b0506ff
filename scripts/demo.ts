/**
 * `npm run demo`: the whole gateway working on a fresh machine. A private redis-server (or the
 * Redis chosen by `--redis-url` / REDIS_URL), two demo upstreams, the gateway built exactly as in
 * production, a demo token, and ready-to-paste curl lines. Ctrl-C stops everything it started and
 * removes every key under `portcullis-demo:` (tokens created through the admin API too). It
 * listens on loopback only, because the admin token it prints is a secret for this run.
 */
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { startGateway } from '../src/gateway-start.js'
import { loadConfig, ConfigError } from '../src/lib/config.js'
import { TokenStore } from '../src/tokens/store.js'
import { maskRedisUrl } from '../src/lib/redis-target.js'
import { demoRedis, purgePrefix, type DemoRedis } from './demo-redis.js'

const PREFIX = 'portcullis-demo:'
const HOST = '127.0.0.1'
const RATE = 5
const WINDOW = 60

const PEOPLE = [{ id: 1, name: 'Ada Lovelace' }, { id: 2, name: 'Alan Turing' }, { id: 3, name: 'Grace Hopper' }]
const PRODUCTS = [{ id: 1, name: 'Portcullis T-shirt' }, { id: 2, name: 'Drawbridge mug' }]

/** A demo upstream answering small JSON, and showing what the gateway forwarded. */
async function startUpstream (name: string, items: Array<{ id: number, name: string }>): Promise<{ server: Server, url: string }> {
  const server = createHttpServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const id = Number(path.split('/')[4])
    const item = items.find((i) => i.id === id)
    const found = Number.isInteger(id) ? item : items
    res.writeHead(found === undefined ? 404 : 200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({
      [name]: found ?? null,
      upstream_saw: {
        path: req.url,
        'x-consumer-id': req.headers['x-consumer-id'] ?? null,
        'x-request-id': req.headers['x-request-id'] ?? null,
        authorization_forwarded: req.headers.authorization !== undefined
      }
    }) + '\n')
    req.resume()
  })
  server.listen(0, HOST)
  await once(server, 'listening')
  return { server, url: `http://${HOST}:${(server.address() as { port: number }).port}` }
}

async function portIsFree (port: number): Promise<boolean> {
  const probe = createNetServer()
  return await new Promise<boolean>((resolve) => {
    probe.once('error', () => resolve(false))
    probe.listen(port, HOST, () => probe.close(() => resolve(true)))
  })
}

async function closeServer (server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

/** The banner: where everything runs and the curl lines to paste. */
function banner (o: { gateway: string, redis: DemoRedis, users: string, products: string, tokenId: string, key: string, admin: string, portNote: string }): string {
  const auth = `-H 'Authorization: Bearer ${o.key}'`
  const admin = `-H 'Authorization: Bearer ${o.admin}'`
  const redisLine = o.redis.pid === null
    ? `${maskRedisUrl(o.redis.url)} (${o.redis.chosenBy ?? ''}; keys under ${PREFIX}, removed on exit)`
    : `${o.redis.url} (private redis-server, pid ${o.redis.pid}, removed on exit)`
  return `
Portcullis demo is running.

  gateway      ${o.gateway}${o.portNote}
  redis        ${redisLine}
  upstreams    /api/v1/users -> ${o.users}   /api/v1/products -> ${o.products}
  demo token   ${o.tokenId}: ${RATE} requests per ${WINDOW} s, allowed routes /api/v1/users/*
  admin token  ${o.admin}

Paste these into another terminal:

  # 200: the token may call /api/v1/users/* (the upstream never sees the token, only X-Consumer-Id)
  curl -i ${o.gateway}/api/v1/users/1 ${auth}

  # 401: no token
  curl -i ${o.gateway}/api/v1/users/1

  # 403: the token may not call /api/v1/products
  curl -i ${o.gateway}/api/v1/products/1 ${auth}

  # 429: ${RATE} requests per ${WINDOW} s; the last of these is refused (earlier ones too if you ran the lines above)
  for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code}\\n' ${o.gateway}/api/v1/users ${auth}; done

  # admin API: list tokens, create one
  curl -s ${o.gateway}/admin/tokens ${admin}
  curl -s -X POST ${o.gateway}/admin/tokens ${admin} -H 'Content-Type: application/json' -d '{"rate_limit":10,"allowed_routes":["/api/v1/products/*"]}'

  # the CLI on the same Redis (after npm install -g, or npx from this folder)
  REDIS_URL=${o.redis.url} REDIS_KEY_PREFIX=${PREFIX} npx portcullis tokens list

  # API docs (Swagger UI) and metrics
  open ${o.gateway}/docs
  curl -s ${o.gateway}/metrics

Request logs follow on stderr. Ctrl-C stops everything the demo started.
`
}

const HELP = `Usage: npm run demo [-- --redis-url URL]

Runs the gateway with two demo upstreams and prints curl lines to try it.
  --redis-url URL   use this Redis (or set REDIS_URL); default: a private redis-server from PATH
Every key the demo writes is under ${PREFIX} and removed on exit.
`

/** The Redis chosen on the command line or in the environment, or null for a private one. */
function chosenRedis (): { url: string, by: string } | null {
  const { values } = parseArgs({ options: { 'redis-url': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true })
  if (values.help === true) { process.stdout.write(HELP); process.exit(0) }
  if (values['redis-url'] !== undefined) return { url: values['redis-url'], by: '--redis-url' }
  if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') return { url: process.env.REDIS_URL, by: 'REDIS_URL' }
  return null
}

async function main (): Promise<void> {
  const started: Array<() => Promise<void>> = [] // undone in reverse order on exit
  let redis: DemoRedis | null = null
  let stopping = false
  const stop = async (code: number): Promise<never> => {
    stopping = true
    const guard = setTimeout(() => {
      process.stderr.write('demo: shutdown took longer than 10 s; killing what is left\n')
      redis?.killNow()
      process.exit(1)
    }, 10_000)
    guard.unref()
    for (const undo of started.reverse()) {
      try { await undo() } catch (err) { process.stderr.write(`demo: while stopping: ${(err as Error).message}\n`) }
    }
    clearTimeout(guard)
    process.exit(code)
  }
  // Signals may arrive twice (the terminal and `npm run` both forward Ctrl-C): stop once. SIGHUP
  // (terminal closed) too, or the private redis-server, in its own process group, would outlive us.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (stopping) return
      process.stderr.write(`\ndemo: ${signal}, stopping the gateway, upstreams${redis?.pid === null ? '' : ' and redis-server'}\n`)
      stop(0).catch(() => process.exit(1))
    })
  }
  process.on('exit', () => { redis?.killNow() })

  try {
    redis = await demoRedis(chosenRedis())
    const r = redis
    started.push(async () => { await r.close() })

    const users = await startUpstream('users', PEOPLE)
    const products = await startUpstream('products', PRODUCTS)
    started.push(async () => { await closeServer(users.server); await closeServer(products.server) })

    const adminToken = 'demo-admin-' + randomBytes(16).toString('hex')
    // The environment's tuning knobs (timeouts, pressure, TRUST_PROXY…) apply; where the demo
    // connects, what it routes and its admin token are its own.
    const config = loadConfig({
      ...process.env,
      REDIS_CLUSTER_NODES: undefined,
      PORT: process.env.PORT ?? '8080',
      HOST,
      REDIS_URL: r.url,
      REDIS_KEY_PREFIX: PREFIX,
      ROUTES: `/api/v1/users=${users.url},/api/v1/products=${products.url}`,
      ADMIN_TOKEN: adminToken,
      RATE_LIMIT_WINDOW_SECONDS: String(WINDOW),
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      LOG_FORMAT: process.env.LOG_FORMAT ?? 'pretty'
    }, { requireRoutes: true })
    let portNote = ''
    if (config.port !== 0 && !await portIsFree(config.port)) {
      portNote = `   (port ${config.port} is taken, so a free one was picked)`
      config.port = 0
    }

    const { app, redis: client } = await startGateway(config, { wait: { timeoutMs: 5000 }, logStream: process.stderr })
    // Runs after the gateway has closed (nothing can create a key any more): every key under the
    // prefix goes, the tokens made through the admin API included.
    started.push(async () => {
      const removed = await purgePrefix(r.url, PREFIX)
      process.stderr.write(`demo: removed ${removed} key${removed === 1 ? '' : 's'} under ${PREFIX}\n`)
    })
    started.push(async () => { await app.close() })
    await app.listen({ port: config.port, host: HOST })
    const gateway = `http://${HOST}:${(app.server.address() as { port: number }).port}`

    const store = new TokenStore(client, PREFIX, { defaultWindowSeconds: WINDOW })
    const token = await store.create({ name: 'demo', rate_limit: RATE, allowed_routes: ['/api/v1/users/*'] })

    process.stdout.write(banner({ gateway, redis: r, users: users.url, products: products.url, tokenId: token.id, key: token.api_key, admin: adminToken, portNote }))
  } catch (err) {
    const message = err instanceof ConfigError ? `invalid configuration: ${err.message}` : (err as Error).message
    process.stderr.write(`demo: ${message}\n`)
    await stop(1)
  }
}

await main()
