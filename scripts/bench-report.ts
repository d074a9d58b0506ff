/** The figures, targets, printed table and bench-results.json of `npm run bench`, from the autocannon results. */
import type { Result } from 'autocannon'
import type { PacedResult } from './bench-paced.js'
import type { MajorGcsBetween } from './bench-gc.js'

/** The three contenders, in the order they are printed. */
export const CONTENDERS = ['bare', 'gateway', 'diy'] as const
/** One of CONTENDERS. */
export type Contender = typeof CONTENDERS[number]

/** What each contender is, for the table and the JSON file. */
export const CONTENDER_NAMES: Record<Contender, string> = {
  bare: 'bare proxy',
  gateway: 'gateway',
  diy: 'do-it-yourself'
}

/** One measured round of one contender at full load: the autocannon result and the server's CPU time in it. */
export interface Round { result: Result, cpuMicros: number }

/** One paced round of one contender: its latencies and the proxy's full collections in it (warm-up included). */
export interface PacedRound { result: PacedResult, majorGcs: MajorGcsBetween }

/** One contender over the whole run. */
export interface Measured {
  rounds: Round[]
  /** Runs at a fixed rate, evenly spread (half the bare proxy's maximum): only their latencies are used. */
  paced: PacedRound[]
  rssBefore: number
  rssAfter: number
}

/** The per-contender figures shown in the table and written to the JSON file. */
export interface ContenderSummary {
  /** Completed requests over all full-load rounds / their total duration. */
  requestsPerSecond: number
  /** Each round's req/s, to show the spread. */
  roundRequestsPerSecond: number[]
  /** Medians over the full-load rounds. */
  latencyP50Ms: number
  latencyP99Ms: number
  /** Median p50, p99 and maximum of the paced runs (ms, from each request's due time). */
  pacedP50Ms: number | null
  pacedP99Ms: number | null
  pacedMaxMs: number | null
  /** Each paced round's p99 (ms) and the proxy's full collections in it, in the order they ran. */
  pacedRounds: Array<{ p99Ms: number, majorGcs: number, longestMajorGcPauseMs: number }>
  requests: number
  non2xx: number
  errors: number
  timeouts: number
  rssBeforeBytes: number
  rssAfterBytes: number
  /** CPU time (user + system) the server process used per completed request over the full-load rounds. */
  cpuMicrosPerRequest: number | null
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length === 0 ? 0 : s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

const round2 = (x: number): number => Math.round(x * 100) / 100

/** Figures of one contender. */
export function summarise (m: Measured): ContenderSummary {
  const requests = m.rounds.reduce((a, r) => a + r.result.requests.total, 0)
  const seconds = m.rounds.reduce((a, r) => a + r.result.duration, 0)
  const cpu = m.rounds.reduce((a, r) => a + r.cpuMicros, 0)
  const sum = (f: (r: Result) => number): number => m.rounds.reduce((a, r) => a + f(r.result), 0)
  return {
    requestsPerSecond: seconds > 0 ? Math.round(requests / seconds) : 0,
    roundRequestsPerSecond: m.rounds.map((r) => Math.round(r.result.requests.total / r.result.duration)),
    latencyP50Ms: median(m.rounds.map((r) => r.result.latency.p50)),
    latencyP99Ms: median(m.rounds.map((r) => r.result.latency.p99)),
    pacedP50Ms: m.paced.length === 0 ? null : round2(median(m.paced.map((r) => r.result.latency.p50))),
    pacedP99Ms: m.paced.length === 0 ? null : round2(median(m.paced.map((r) => r.result.latency.p99))),
    pacedMaxMs: m.paced.length === 0 ? null : round2(median(m.paced.map((r) => r.result.latency.max))),
    pacedRounds: m.paced.map((r) => ({ p99Ms: round2(r.result.latency.p99), majorGcs: r.majorGcs.count, longestMajorGcPauseMs: round2(r.majorGcs.longestPauseMs) })),
    requests,
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    rssBeforeBytes: m.rssBefore,
    rssAfterBytes: m.rssAfter,
    cpuMicrosPerRequest: requests > 0 ? Math.round(cpu / requests) : null
  }
}

/** Why a run is not valid: any non-2xx, error, timeout or body that is not the upstream's. */
export function problems (name: string, r: Result): string[] {
  const out: string[] = []
  if (r.non2xx > 0) out.push(`${name}: ${r.non2xx} non-2xx answers (${JSON.stringify(r.statusCodeStats)})`)
  if (r.errors > 0 || r.timeouts > 0) out.push(`${name}: ${r.errors} errors, ${r.timeouts} timeouts`)
  // A non-2xx body is a mismatch too: report bodies separately only when every status was 2xx.
  if (r.mismatches > 0 && r.non2xx === 0) out.push(`${name}: ${r.mismatches} answers whose body was not the upstream's`)
  if (r.requests.total === 0) out.push(`${name}: no request completed`)
  return out
}

/** Why a paced run is not valid: any non-2xx, error, unanswered request or wrong body. */
export function pacedProblems (name: string, r: PacedResult): string[] {
  const out: string[] = []
  if (r.non2xx > 0) out.push(`${name} (paced): ${r.non2xx} non-2xx answers`)
  if (r.errors > 0 || r.timeouts > 0) out.push(`${name} (paced): ${r.errors} errors, ${r.timeouts} unanswered`)
  if (r.mismatches > 0) out.push(`${name} (paced): ${r.mismatches} answers whose body was not the upstream's`)
  if (r.measured === 0) out.push(`${name} (paced): no request completed after the warm-up`)
  return out
}

/** a / b to two decimals; null when b is 0. */
export function ratio (a: number, b: number): number | null {
  return b > 0 ? Math.round((a / b) * 100) / 100 : null
}

/** One target of issue 9 and whether this run met it. */
export interface TargetCheck { name: string, measured: number | null, limit: number, ok: boolean, text: string }

/** The targets the hot path is held to (docs/performance.md); `null` figures count as missed. */
export function checkTargets (s: Record<Contender, ContenderSummary>): TargetCheck[] {
  const b = s.bare
  const g = s.gateway
  const d = s.diy
  const tBare = ratio(g.requestsPerSecond, b.requestsPerSecond)
  const cpu = g.cpuMicrosPerRequest !== null && b.cpuMicrosPerRequest !== null ? ratio(g.cpuMicrosPerRequest, b.cpuMicrosPerRequest) : null
  const tDiy = ratio(g.requestsPerSecond, d.requestsPerSecond)
  const pacedExcess = g.pacedP99Ms !== null && b.pacedP99Ms !== null ? round2(g.pacedP99Ms - b.pacedP99Ms) : null
  const atLeast = (x: number | null, limit: number): boolean => x !== null && x >= limit
  const atMost = (x: number | null, limit: number): boolean => x !== null && x <= limit
  return [
    { name: 'throughput gateway/bare', measured: tBare, limit: 0.8, ok: atLeast(tBare, 0.8), text: '≥ 0.80' },
    { name: 'CPU per request gateway/bare', measured: cpu, limit: 1.3, ok: atMost(cpu, 1.3), text: '≤ 1.30' },
    { name: 'throughput gateway/do-it-yourself', measured: tDiy, limit: 1.3, ok: atLeast(tDiy, 1.3), text: '≥ 1.30' },
    { name: 'p99 at half the bare maximum: gateway − bare (ms)', measured: pacedExcess, limit: 1, ok: atMost(pacedExcess, 1), text: '≤ 1' }
  ]
}

const mb = (n: number): string => (n / 1024 / 1024).toFixed(1)
const WIDTHS = [16, 8, 7, 7, 11, 11, 9, 8, 20]
const row = (cells: Array<string | number>): string =>
  cells.map((c, i) => i === 0 ? String(c).padEnd(WIDTHS[i] ?? 0) : String(c).padStart(WIDTHS[i] ?? 0)).join('  ')
const fixed = (n: number | null, digits: number): string => n === null ? 'n/a' : n.toFixed(digits)

/** Prints the table, the targets, the Redis and logging lines. */
export function printReport (s: Record<Contender, ContenderSummary>, targets: TargetCheck[], pacedRate: number): void {
  console.log('')
  console.log(row(['', 'req/s', 'p50 ms', 'p99 ms', `p99 ms@${pacedRate}`, 'CPU µs/req', 'requests', 'non-2xx', 'RSS before → after MB']))
  for (const c of CONTENDERS) {
    const t = s[c]
    console.log(row([CONTENDER_NAMES[c], t.requestsPerSecond, t.latencyP50Ms, t.latencyP99Ms, t.pacedP99Ms ?? 'n/a',
      t.cpuMicrosPerRequest ?? 'n/a', t.requests, t.non2xx, `${mb(t.rssBeforeBytes)} → ${mb(t.rssAfterBytes)}`]))
  }
  for (const c of CONTENDERS) console.log(`  ${CONTENDER_NAMES[c]} req/s per round: ${s[c].roundRequestsPerSecond.join(', ')}`)
  for (const c of CONTENDERS) {
    const t = s[c]
    if (t.pacedP99Ms === null) continue
    console.log(`  ${CONTENDER_NAMES[c]} at ${pacedRate} req/s, evenly spread: p50 ${t.pacedP50Ms} ms, p99 ${t.pacedP99Ms} ms, max ${t.pacedMaxMs} ms (medians over the paced rounds)`)
    console.log(`    paced rounds' p99 (full collections in the proxy): ${t.pacedRounds.map((r) => `${r.p99Ms.toFixed(2)} ms (${r.majorGcs})`).join(', ')}`)
  }
  console.log('')
  for (const t of targets) console.log(`${t.ok ? 'met   ' : 'MISSED'}  ${t.name}: ${fixed(t.measured, 2)} (target ${t.text})`)
}
