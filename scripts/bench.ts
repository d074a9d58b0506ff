/**
 * `npm run bench` (docs/performance.md): Redis, an upstream and three contenders, each server in its
 * own child process (scripts/bench-target.ts): the bare @fastify/reply-from proxy, the gateway built
 * like production, and the do-it-yourself stack (@fastify/bearer-auth + @fastify/rate-limit +
 * @fastify/http-proxy). Each proxy runs alone on its own core (scripts/bench-children.ts); autocannon
 * drives them from this process in alternating rounds (bare, gateway, diy, then gateway, diy,
 * bare…), so a change in the machine's load hits all three alike. Then bare and gateway are paced at
 * half the bare proxy's maximum rate, the requests evenly spread in time (scripts/bench-paced.ts),
 * to compare p99 latencies, each paced round with the full collections its proxy had
 * (scripts/bench-gc.ts). Prints req/s, p50/p99, server CPU time per request, RSS, the ratios
 * and the targets, and the CPU time the hypervisor took from each core meanwhile
 * (scripts/cpu-steal.ts), writes bench-results.json, and exits 1 when a target is missed or any
 * answer was not the upstream's 2xx.
 *
 * Environment: BENCH_DURATION (s per round, default 5), BENCH_ROUNDS (default 3), BENCH_WARMUP
 * (s, default 2), BENCH_PACED_DURATION (s, default 5), BENCH_CONNECTIONS (default 50, below the
 * gateway's MAX_IN_FLIGHT_PER_TOKEN of 256: one token drives the load), BENCH_CPU_PROF (a folder:
 * the proxies run with --cpu-prof into it), BENCH_KEEP_LOGS=1, REDIS_URL (use that Redis instead
 * of a private one).
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { availableParallelism, cpus as cpuList, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon, { type Result } from 'autocannon'
import { Redis } from 'ioredis'
import { TokenStore } from '../src/tokens/store.js'
import { GCRA_SCRIPT } from '../src/lib/gcra.js'
import { startRedis, commandCalls, callsBetween, commandsOutsideScript, type BenchRedis } from './bench-redis.js'
import { CONTENDERS, CONTENDER_NAMES, checkTargets, summarise, problems, pacedProblems, printReport, ratio, type Contender, type Measured } from './bench-report.js'
import { pinSelf, startTarget, type Target } from './bench-children.js'
import { pacedLoad } from './bench-paced.js'
import { describeMajorGcs, majorGcsBetween } from './bench-gc.js'
import { readCoreTimes, stealPercent, type CoreTimes } from './cpu-steal.js'

const PREFIX = '/api/v1/bench'
const PATH = `${PREFIX}/items?page=1`
const KEY_PREFIX = 'portcullis-bench:'
const RESULTS_FILE = 'bench-results.json'
/**
 * Seconds of the paced load run, unmeasured, at the start of each paced round, on the connections
 * the measured seconds then use, with no pause between: the first half second at a new rate after
 * a pause shows a start-up queue in every contender (p99 of 38–150 ms, then 3 ms in the rounds
 * after), which is not the steady state the target is about. A warm-up on connections of its own,
 * closed before the measured seconds opened new ones after a pause, still left that queue inside
 * the measured seconds of some rounds (docs/performance.md, "Warm-up on the same connections").
 */
const PACED_WARMUP_SECONDS = 1
/**
 * Steal above this share of a core's time marks a run as noisy: on the development machine quiet
 * runs showed 0–2 %, and in runs at 12–37 % the bare proxy's req/s differed by 1.6× between
 * adjacent rounds (docs/performance.md).
 */
const NOISY_STEAL_PERCENT = 5
/** The gateway's default MAX_IN_FLIGHT_PER_TOKEN: one token's connections must stay below it. */
const IN_FLIGHT_LIMIT = 256

interface Settings { duration: number, rounds: number, warmup: number, paced: number, connections: number, cpuProfDir: string | null }

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
    duration: int('BENCH_DURATION', 5, 1, 120),
    rounds: int('BENCH_ROUNDS', 3, 1, 10),
    warmup: int('BENCH_WARMUP', 2, 0, 60),
    paced: int('BENCH_PACED_DURATION', 5, 1, 120),
    connections: int('BENCH_CONNECTIONS', 50, 1, IN_FLIGHT_LIMIT - 1),
    cpuProfDir: prof === undefined || prof === '' ? null : prof
  }
}

/** One autocannon run at full load; refuses any target that is not on 127.0.0.1. */
async function load (port: number, s: Settings, seconds: number, headers: Record<string, string>, body: string): Promise<Result> {
  const url = `http://127.0.0.1:${port}${PATH}`
  return await autocannon({ url, connections: s.connections, pipelining: 1, duration: seconds, timeout: 10, headers, expectBody: body })
}

/** Requests the gateway itself counted on the bench route (its Prometheus counter). */
async function gatewayRequests (port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('portcullis_http_requests_total{') && line.includes(`route="${PREFIX}"`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

async function countLines (file: string): Promise<number> {
  let n = 0
  for await (const chunk of createReadStream(file)) for (const b of chunk as Buffer) if (b === 0x0a) n++
  return n
}

/** The contenders in round `i`'s order: each round starts one further along. */
const roundOrder = <T>(xs: readonly T[], i: number): T[] => xs.map((_, k) => xs[(k + i) % xs.length] as T)

async function main (): Promise<number> {
  const s = settings(process.env)
  const cores = availableParallelism()
  const pin = pinSelf()
  const tmp = await mkdtemp(join(tmpdir(), 'portcullis-bench-'))
  const logFiles = { gateway: join(tmp, 'gateway.log'), diy: join(tmp, 'diy.log') }
  const targets: Target[] = []
  let redis: BenchRedis | null = null
  let client: Redis | null = null
  let tokenId: string | null = null
  const pacedRounds = Math.min(s.rounds, 3)
  const budgetMs = (3 * (s.warmup + 2) + s.rounds * 3 * (s.duration + 2) + pacedRounds * 2 * (s.paced + PACED_WARMUP_SECONDS + 2) + 90) * 1000
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
    const upstream = await startTarget('upstream', {}, pin, null)
    targets.push(upstream)
    const body = upstream.body ?? ''
    const upstreamUrl = `http://127.0.0.1:${upstream.port}`

    const load1 = loadavg()[0] ?? 0
    const cpuModel = cpuList()[0]?.model ?? 'unknown CPU'
    console.log(`Portcullis bench: node ${process.version}, ${cores} cores (${cpuModel}), load average ${load1.toFixed(2)} at start, ${new Date().toISOString()}`)
    console.log(pin === null
      ? 'Not pinned (one core or no taskset): every process shares every core.'
      : `Pinning: each proxy alone on core ${pin.proxy}; autocannon, the upstream and Redis on core ${pin.load}.`)
    console.log(`Load: GET ${PATH}, ${s.connections} connections (below MAX_IN_FLIGHT_PER_TOKEN ${IN_FLIGHT_LIMIT}), ${s.warmup} s warm-up each, ` +
      `${s.rounds} alternating rounds of ${s.duration} s per contender, then ${pacedRounds} alternating paced rounds of ${s.paced} s at half the bare maximum, ` +
      `evenly spread (each after ${PACED_WARMUP_SECONDS} s of the same load on the same connections, unmeasured).`)
    if (load1 > cores / 2) console.log(`Note: the machine was already busy (load ${load1.toFixed(2)} on ${cores} cores): numbers are noisy, ratios less so.`)
    console.log(`Redis: ${redis.private ? `private redis-server at ${redis.url}` : `REDIS_URL (${new URL(redis.url).host}); its command counts include other clients`}`)

    const gatewayEnv = { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', REDIS_URL: redis.url, REDIS_KEY_PREFIX: KEY_PREFIX, ROUTES: `${PREFIX}=${upstreamUrl}` }
    const started: Record<Contender, Target> = {
      bare: await startTarget('bare', { BENCH_UPSTREAM: upstreamUrl }, pin, s.cpuProfDir),
      gateway: await startTarget('gateway', { BENCH_GATEWAY_ENV: JSON.stringify(gatewayEnv), BENCH_LOG_FILE: logFiles.gateway }, pin, s.cpuProfDir),
      diy: await startTarget('diy', { BENCH_UPSTREAM: upstreamUrl, BENCH_REDIS_URL: redis.url, BENCH_API_KEY: token.api_key, BENCH_PREFIX: PREFIX, BENCH_LOG_FILE: logFiles.diy }, pin, s.cpuProfDir)
    }
    for (const c of CONTENDERS) targets.push(started[c])
    const measured = {} as Record<Contender, Measured>
    for (const c of CONTENDERS) {
      const t = started[c]
      const res = await fetch(`http://127.0.0.1:${t.port}${PATH}`, { headers })
      const text = await res.text()
      if (res.status !== 200 || text !== body) throw new Error(`${c}: smoke request answered ${res.status} ${text.slice(0, 200)}`)
      measured[c] = { rounds: [], paced: [], rssBefore: (await t.stats()).rss, rssAfter: 0 }
      if (s.warmup > 0) await load(t.port, s, s.warmup, headers, body)
    }
    await sleep(300) // requests cut off at the end of a warm-up reach their server before the first round

    const steal: { fullLoad: number[] | null, paced: number[] | null } = { fullLoad: null, paced: null }
    const stealSince = (from: CoreTimes[] | null): number[] | null => {
      const to = readCoreTimes()
      return from === null || to === null ? null : stealPercent(from, to)
    }
    const fullLoadFrom = readCoreTimes()
    const calls = { before: new Map<string, number>(), delta: {} as Record<string, number> }
    let served = 0
    let sent = 0
    for (let i = 0; i < s.rounds; i++) {
      for (const c of roundOrder(CONTENDERS, i)) {
        process.stdout.write(`round ${i + 1}: ${CONTENDER_NAMES[c]} … `)
        const t = started[c]
        if (c === 'gateway') { calls.before = await commandCalls(client); served -= await gatewayRequests(t.port) }
        const cpuBefore = (await t.stats()).cpuMicros
        const result = await load(t.port, s, s.duration, headers, body)
        const cpuAfter = (await t.stats()).cpuMicros
        await sleep(300) // the requests cut off at the end finish on the server side
        if (c === 'gateway') {
          for (const [k, v] of Object.entries(callsBetween(calls.before, await commandCalls(client)))) calls.delta[k] = (calls.delta[k] ?? 0) + v
          served += await gatewayRequests(t.port)
          sent += result.requests.sent
        }
        measured[c].rounds.push({ result, cpuMicros: cpuAfter - cpuBefore })
        console.log(`${Math.round(result.requests.total / result.duration)} req/s`)
      }
    }
    steal.fullLoad = stealSince(fullLoadFrom)
    const bareMax = summarise(measured.bare).requestsPerSecond
    const pacedRate = Math.max(1, Math.floor(bareMax / 2))
    const pacedFrom = readCoreTimes()
    for (let i = 0; i < pacedRounds; i++) {
      for (const c of roundOrder(['bare', 'gateway'] as const, i)) {
        process.stdout.write(`paced ${i + 1} at ${pacedRate} req/s: ${CONTENDER_NAMES[c]} … `)
        const paced = { port: started[c].port, path: PATH, headers, expectBody: body, rate: pacedRate, connections: s.connections }
        const gcBefore = (await started[c].stats()).majorGcs
        const result = await pacedLoad({ ...paced, warmupSeconds: PACED_WARMUP_SECONDS, seconds: s.paced })
        // Counted over the warm-up too: a collection there can still leave its queue in the measured seconds.
        const gcs = majorGcsBetween(gcBefore, (await started[c].stats()).majorGcs)
        measured[c].paced.push({ result, majorGcs: gcs })
        console.log(`p50 ${result.latency.p50.toFixed(2)} ms, p99 ${result.latency.p99.toFixed(2)} ms, max ${result.latency.max.toFixed(1)} ms; ` +
          `full collections in the proxy: ${describeMajorGcs(gcs)}`)
      }
    }
    steal.paced = stealSince(pacedFrom)
    for (const c of CONTENDERS) measured[c].rssAfter = (await started[c].stats()).rss
    for (const c of CONTENDERS) await started[c].stop()
    await upstream.stop()

    delete calls.delta.info // this script's own INFO commandstats
    const scriptCalls = (calls.delta.evalsha ?? 0) + (calls.delta.eval ?? 0)
    const perRequest = sent > 0 ? scriptCalls / sent : null
    const outside = commandsOutsideScript(calls.delta, sent, GCRA_SCRIPT)
    const summary = { bare: summarise(measured.bare), gateway: summarise(measured.gateway), diy: summarise(measured.diy) }
    const targetChecks = checkTargets(summary)
    printReport(summary, targetChecks, pacedRate)
    console.log('')
    console.log(`Redis commands per gateway request: ${perRequest === null ? 'n/a' : perRequest.toFixed(3)} EVALSHA/EVAL ` +
      `(${scriptCalls} script calls / ${sent} requests sent; checks of one event-loop tick share one call; the gateway answered ${served})`)
    const others = Object.entries(outside).map(([k, v]) => `${k} ${v}`).join(', ')
    console.log(`  other commands during the gateway rounds: ${others === '' ? 'none' : others} (PING is the 1 s readiness check)`)
    const logLines = { gateway: await countLines(logFiles.gateway), diy: await countLines(logFiles.diy) }
    console.log(`Log files (buffered pino destination, info): gateway ${logLines.gateway} lines, ${(await stat(logFiles.gateway)).size} bytes; do-it-yourself ${logLines.diy} lines`)
    if (steal.fullLoad !== null && steal.paced !== null) {
      const cores = (xs: number[]): string => xs.map((x, i) => `core ${i} ${x.toFixed(1)} %`).join(', ')
      console.log(`CPU time the hypervisor took (steal): full-load rounds ${cores(steal.fullLoad)}; paced rounds ${cores(steal.paced)}` +
        (Math.max(...steal.fullLoad, ...steal.paced) > NOISY_STEAL_PERCENT ? ` — over ${NOISY_STEAL_PERCENT} %: this run's figures are noisy` : ''))
    }
    if (process.env.BENCH_KEEP_LOGS === '1') console.log(`Logs kept in ${tmp}`)
    if (s.cpuProfDir !== null) console.log(`CPU profiles in ${s.cpuProfDir}: bare.cpuprofile, gateway.cpuprofile, diy.cpuprofile`)

    const found: string[] = []
    for (const c of CONTENDERS) {
      for (const r of measured[c].rounds) found.push(...problems(CONTENDER_NAMES[c], r.result))
      for (const r of measured[c].paced) found.push(...pacedProblems(CONTENDER_NAMES[c], r.result))
    }
    if (perRequest !== null && redis.private && perRequest > 1.001) found.push(`gateway: ${perRequest.toFixed(3)} script calls per request, expected at most 1`)
    for (const t of targetChecks) if (!t.ok) found.push(`target missed: ${t.name} = ${t.measured ?? 'n/a'} (target ${t.text})`)
    await writeFile(RESULTS_FILE, JSON.stringify({
      date: new Date().toISOString(),
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpuCores: cores,
      cpuModel,
      loadAverageAtStart: Math.round(load1 * 100) / 100,
      pinning: pin === null ? 'none' : `proxy on core ${pin.proxy}; autocannon, upstream, Redis on core ${pin.load}`,
      stealPercentPerCore: steal,
      settings: { durationSeconds: s.duration, rounds: s.rounds, warmupSeconds: s.warmup, pacedSeconds: s.paced, pacedRate, connections: s.connections, path: PATH },
      redis: redis.private ? 'private redis-server' : 'REDIS_URL',
      contenders: Object.fromEntries(CONTENDERS.map((c) => [c, { name: CONTENDER_NAMES[c], ...summary[c] }])),
      gatewayExtras: { requestsSent: sent, requestsCountedByGateway: served, scriptCallsPerRequest: perRequest, otherCommands: outside, logLines },
      ratio: {
        throughputGatewayBare: ratio(summary.gateway.requestsPerSecond, summary.bare.requestsPerSecond),
        cpuPerRequestGatewayBare: ratio(summary.gateway.cpuMicrosPerRequest ?? 0, summary.bare.cpuMicrosPerRequest ?? 0),
        throughputGatewayDiy: ratio(summary.gateway.requestsPerSecond, summary.diy.requestsPerSecond)
      },
      targets: targetChecks,
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
