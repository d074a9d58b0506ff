/**
 * `npm run bench` (SPEC §7): Redis, an upstream, the bare @fastify/reply-from proxy and the
 * gateway built like production, each server in its own child process (scripts/bench-target.ts),
 * driven in turn by autocannon from this process with the same settings. Prints req/s, p50/p99,
 * server CPU time per request and the gateway/bare ratios, Redis commands per request and the
 * RSS before/after, writes the same to bench-results.json, and exits 1 when any answer was not
 * the upstream's 2xx.
 *
 * Environment: BENCH_DURATION (s, default 10), BENCH_WARMUP (s, default 2), BENCH_CONNECTIONS
 * (default 50), BENCH_CPU_PROF (a folder: both proxies run with --cpu-prof into it),
 * BENCH_KEEP_LOGS=1 (keep the gateway's log file), REDIS_URL (use that Redis instead of a private one).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon, { type Result } from 'autocannon'
import { Redis } from 'ioredis'
import { TokenStore } from '../src/tokens/store.js'
import { GCRA_SCRIPT } from '../src/lib/gcra.js'
import { startRedis, commandCalls, callsBetween, commandsOutsideScript, type BenchRedis } from './bench-redis.js'
import { summarise, problems, printReport, ratio, type GatewayExtras, type Measured } from './bench-report.js'
import type { ParentMessage, TargetMessage, TargetRole } from './bench-target.js'

const PREFIX = '/api/v1/bench'
const PATH = `${PREFIX}/items?page=1`
const KEY_PREFIX = 'portcullis-bench:'
const RESULTS_FILE = 'bench-results.json'

interface Settings { duration: number, warmup: number, connections: number, pipelining: number, cpuProfDir: string | null }

function settings (env: NodeJS.ProcessEnv): Settings {
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be a whole number from ${min} to ${max}`)
    return n
  }
  const prof = env.BENCH_CPU_PROF
  return {
    duration: int('BENCH_DURATION', 10, 1, 600),
    warmup: int('BENCH_WARMUP', 2, 0, 60),
    connections: int('BENCH_CONNECTIONS', 50, 1, 1000),
    pipelining: 1,
    cpuProfDir: prof === undefined || prof === '' ? null : prof
  }
}

/** A server child: its port, its RSS and CPU time on demand, and a clean stop (exit awaited). */
interface Target {
  role: TargetRole
  port: number
  body: string | undefined
  proc: ChildProcess
  stats: () => Promise<{ rss: number, cpuMicros: number }>
  stop: () => Promise<void>
}

/** Forks bench-target.js in `role`; with BENCH_CPU_PROF the proxies run under --cpu-prof. */
async function startTarget (role: TargetRole, env: Record<string, string>, s: Settings): Promise<Target> {
  const execArgv = s.cpuProfDir === null || role === 'upstream'
    ? []
    : ['--cpu-prof', `--cpu-prof-dir=${s.cpuProfDir}`, `--cpu-prof-name=${role}.cpuprofile`]
  const proc = fork(fileURLToPath(new URL('./bench-target.js', import.meta.url)), [role], {
    env: { ...process.env, ...env }, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const next = async <T extends TargetMessage['type']>(type: T): Promise<Extract<TargetMessage, { type: T }>> =>
    await new Promise((resolve, reject) => {
      const onMessage = (m: TargetMessage): void => {
        if (m.type !== type) return
        proc.off('exit', onExit)
        proc.off('message', onMessage)
        resolve(m as Extract<TargetMessage, { type: T }>)
      }
      const onExit = (code: number | null): void => {
        proc.off('message', onMessage)
        reject(new Error(`${role} child exited (code ${code}) before answering ${type}`))
      }
      proc.on('message', onMessage)
      proc.once('exit', onExit)
    })
  const ask = (m: ParentMessage): void => { proc.send(m) }
  const ready = await next('ready')
  return {
    role,
    port: ready.port,
    body: ready.body,
    proc,
    stats: async () => { const r = next('stats'); ask({ type: 'stats' }); return await r },
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const gone = once(proc, 'exit')
      ask({ type: 'stop' })
      const timer = setTimeout(() => { proc.kill('SIGKILL') }, 10_000)
      await gone
      clearTimeout(timer)
    }
  }
}

/** One autocannon run; refuses any target that is not on 127.0.0.1. */
async function load (url: string, s: Settings, seconds: number, headers: Record<string, string>, expectBody: string): Promise<Result> {
  if (new URL(url).hostname !== '127.0.0.1') throw new Error(`bench targets must be on 127.0.0.1, not ${url}`)
  return await autocannon({ url, connections: s.connections, pipelining: s.pipelining, duration: seconds, timeout: 10, headers, expectBody })
}

/** Requests the gateway itself counted on the bench route (its Prometheus counter). */
async function gatewayRequests (base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('portcullis_http_requests_total{') && line.includes(`route="${PREFIX}"`)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  }
  return sum
}

async function countLines (file: string): Promise<number> {
  let n = 0
  for await (const chunk of createReadStream(file)) for (const b of chunk as Buffer) if (b === 0x0a) n++
  return n
}

/** Smoke request, RSS, warm-up, then the measured run (CPU time around it) between `around` snapshots. */
async function measure (target: Target, s: Settings, headers: Record<string, string>, body: string,
  around: { before: () => Promise<void>, after: () => Promise<void> }): Promise<Measured> {
  const url = `http://127.0.0.1:${target.port}${PATH}`
  const res = await fetch(url, { headers })
  const text = await res.text()
  if (res.status !== 200 || text !== body) throw new Error(`${target.role}: smoke request answered ${res.status} ${text.slice(0, 200)}`)
  const { rss: rssBefore } = await target.stats()
  if (s.warmup > 0) await load(url, s, s.warmup, headers, body)
  await sleep(300) // requests cut off at the end of the warm-up reach the server before the snapshot
  await around.before()
  const { cpuMicros: cpuBefore } = await target.stats()
  const result = await load(url, s, s.duration, headers, body)
  const { cpuMicros: cpuAfter } = await target.stats()
  await sleep(300) // requests cut off at the end of the run finish on the server side
  await around.after()
  return { result, rssBefore, rssAfter: (await target.stats()).rss, cpuMicros: cpuAfter - cpuBefore }
}

async function main (): Promise<number> {
  const s = settings(process.env)
  const cpus = availableParallelism()
  const tmp = await mkdtemp(join(tmpdir(), 'portcullis-bench-'))
  const logFile = join(tmp, 'gateway.log')
  const targets: Target[] = []
  let redis: BenchRedis | null = null
  let client: Redis | null = null
  let tokenId: string | null = null
  // Bounded in time whatever happens: startup, two warm-ups, two runs, and slack for shutdown.
  const budgetMs = (2 * (s.warmup + s.duration) + 90) * 1000
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: still running after ${budgetMs / 1000} s; killing everything\n`)
    for (const t of targets) t.proc.kill('SIGKILL')
    redis?.killNow()
    process.exit(1)
  }, budgetMs)
  try {
    redis = await startRedis(process.env)
    client = new Redis(redis.url, { maxRetriesPerRequest: 1 })
    const token = await new TokenStore(client, KEY_PREFIX).create({
      name: 'bench', rate_limit: 1_000_000, burst: 1_000_000, window_seconds: 1, allowed_routes: ['/*']
    })
    tokenId = token.id
    const headers = { authorization: `Bearer ${token.api_key}` }

    const upstream = await startTarget('upstream', {}, s)
    targets.push(upstream)
    const body = upstream.body ?? ''
    const upstreamUrl = `http://127.0.0.1:${upstream.port}`
    const none = { before: async () => {}, after: async () => {} }

    const load1 = loadavg()[0] ?? 0
    console.log(`Portcullis bench: node ${process.version}, ${cpus} CPU cores, load average ${load1.toFixed(2)} at start, ${new Date().toISOString()}`)
    console.log('Processes: upstream, bare proxy and gateway each run in their own child process; autocannon drives them from this one.')
    console.log(`Load: GET ${PATH}, ${s.connections} connections, pipelining ${s.pipelining}, ${s.warmup} s warm-up + ${s.duration} s measured per target, one target at a time.`)
    if (load1 > cpus / 2) console.log(`Note: the machine was already busy (load ${load1.toFixed(2)} on ${cpus} cores): numbers are noisy.`)
    if (cpus <= 2) console.log(`Note: ${cpus} cores are shared by autocannon, the proxy under test, the upstream and redis-server; compare the ratios more than the absolute numbers.`)
    console.log(`Redis: ${redis.private ? `private redis-server at ${redis.url}` : `REDIS_URL (${new URL(redis.url).host}); its command counts include other clients`}`)

    process.stdout.write('bare proxy … ')
    const bareTarget = await startTarget('bare', { BENCH_UPSTREAM: upstreamUrl }, s)
    targets.push(bareTarget)
    const bare = await measure(bareTarget, s, headers, body, none)
    await bareTarget.stop()
    console.log(`${Math.round(bare.result.requests.average)} req/s`)

    process.stdout.write('gateway … ')
    const gatewayEnv = {
      PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', REDIS_URL: redis.url, REDIS_KEY_PREFIX: KEY_PREFIX, ROUTES: `${PREFIX}=${upstreamUrl}`
    }
    const gwTarget = await startTarget('gateway', { BENCH_GATEWAY_ENV: JSON.stringify(gatewayEnv), BENCH_LOG_FILE: logFile }, s)
    targets.push(gwTarget)
    const gwBase = `http://127.0.0.1:${gwTarget.port}`
    const calls = { before: new Map<string, number>(), after: new Map<string, number>() }
    const served = { before: 0, after: 0 }
    const redisClient = client
    const gateway = await measure(gwTarget, s, headers, body, {
      before: async () => { served.before = await gatewayRequests(gwBase); calls.before = await commandCalls(redisClient) },
      after: async () => { calls.after = await commandCalls(redisClient); served.after = await gatewayRequests(gwBase) }
    })
    await gwTarget.stop()
    console.log(`${Math.round(gateway.result.requests.average)} req/s`)
    await upstream.stop()

    const delta = callsBetween(calls.before, calls.after)
    delete delta.info // this script's own INFO commandstats
    // Every request sent reached the gateway's token check, including the ones cut off when the
    // run stopped (those never complete, so the gateway's own counter misses them).
    const sent = gateway.result.requests.sent
    const scriptCalls = (delta.evalsha ?? 0) + (delta.eval ?? 0)
    const perRequest = sent > 0 ? scriptCalls / sent : null
    const outside = commandsOutsideScript(delta, scriptCalls, GCRA_SCRIPT)
    const outsidePerRequest = sent > 0 ? Object.values(outside).reduce((a, n) => a + n, 0) / sent : null

    const b = summarise(bare)
    const g = summarise(gateway)
    const extras: GatewayExtras = {
      requestsSent: sent,
      requestsCountedByGateway: served.after - served.before,
      scriptCallsPerRequest: perRequest,
      otherCommands: outside,
      otherCommandsPerRequest: outsidePerRequest,
      logLines: await countLines(logFile),
      logBytes: (await stat(logFile)).size
    }
    printReport(b, g, extras, scriptCalls)
    if (process.env.BENCH_KEEP_LOGS === '1') console.log(`Gateway log kept at ${logFile}`)
    if (s.cpuProfDir !== null) console.log(`CPU profiles: ${join(s.cpuProfDir, 'bare.cpuprofile')}, ${join(s.cpuProfDir, 'gateway.cpuprofile')}`)

    const found = [...problems('bare proxy', bare.result), ...problems('gateway', gateway.result)]
    if (perRequest !== null && redis.private && Math.abs(perRequest - 1) > 0.01) found.push(`gateway: ${perRequest.toFixed(3)} script calls per request, expected 1`)
    await writeFile(RESULTS_FILE, JSON.stringify({
      date: new Date().toISOString(),
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpuCores: cpus,
      loadAverageAtStart: Math.round(load1 * 100) / 100,
      processes: 'upstream, bare proxy and gateway each in their own child process; autocannon in the parent',
      settings: { durationSeconds: s.duration, warmupSeconds: s.warmup, connections: s.connections, pipelining: s.pipelining, path: PATH },
      redis: redis.private ? 'private redis-server' : 'REDIS_URL',
      bare: b,
      gateway: { ...g, ...extras },
      ratio: {
        throughput: ratio(g.requestsPerSecond, b.requestsPerSecond),
        p99: ratio(g.latencyP99Ms, b.latencyP99Ms),
        cpuPerRequest: ratio(g.cpuMicrosPerRequest ?? 0, b.cpuMicrosPerRequest ?? 0)
      },
      redisCommandsPerRequest: perRequest,
      redisCommandsDuringGatewayRun: delta,
      ok: found.length === 0,
      problems: found
    }, null, 2) + '\n')
    console.log(`Results written to ${RESULTS_FILE}`)
    for (const p of found) console.error(`FAIL ${p}`)
    return found.length === 0 ? 0 : 1
  } finally {
    for (const t of targets) await t.stop()
    if (tokenId !== null && client !== null && redis?.private === false) await new TokenStore(client, KEY_PREFIX).revoke(tokenId).catch(() => false)
    client?.disconnect()
    await redis?.close()
    if (process.env.BENCH_KEEP_LOGS !== '1') await rm(tmp, { recursive: true, force: true })
    clearTimeout(watchdog)
  }
}

main().then((code) => { process.exit(code) }, (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
