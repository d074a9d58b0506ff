/** The printed table and the bench-results.json of `npm run bench`, from the autocannon results. */
import type { Result } from 'autocannon'

/** One measured target: the autocannon result, the server's RSS around the whole load, its CPU time in the measured run. */
export interface Measured { result: Result, rssBefore: number, rssAfter: number, cpuMicros: number }

/** The per-target figures shown in the table and written to the JSON file. */
export interface TargetSummary {
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  latencyAverageMs: number
  requests: number
  non2xx: number
  errors: number
  timeouts: number
  bodyMismatches: number
  rssBeforeBytes: number
  rssAfterBytes: number
  /** CPU time (user + system) the server process used per request in the measured run. */
  cpuMicrosPerRequest: number | null
}

/** What the gateway run measured beyond autocannon's view. */
export interface GatewayExtras {
  /** Requests autocannon sent in the measured run, the ones cut off at its end included. */
  requestsSent: number
  /** Requests the gateway answered (its Prometheus counter): the cut-off ones are missing. */
  requestsCountedByGateway: number
  scriptCallsPerRequest: number | null
  /** Commands clients sent besides the script calls (PING of the readiness check…). */
  otherCommands: Record<string, number>
  otherCommandsPerRequest: number | null
  logLines: number
  logBytes: number
}

/** Figures of one target. */
export function summarise (m: Measured): TargetSummary {
  const r = m.result
  return {
    requestsPerSecond: Math.round(r.requests.average),
    latencyP50Ms: r.latency.p50,
    latencyP99Ms: r.latency.p99,
    latencyAverageMs: Math.round(r.latency.average * 100) / 100,
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    bodyMismatches: r.mismatches,
    rssBeforeBytes: m.rssBefore,
    rssAfterBytes: m.rssAfter,
    cpuMicrosPerRequest: r.requests.total > 0 ? Math.round(m.cpuMicros / r.requests.total) : null
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

/** a / b to two decimals; null when b is 0 (autocannon latencies are whole milliseconds). */
export function ratio (a: number, b: number): number | null {
  return b > 0 ? Math.round((a / b) * 100) / 100 : null
}

const mb = (n: number): string => (n / 1024 / 1024).toFixed(1)
const WIDTHS = [14, 9, 8, 8, 12, 9, 8, 22]
const row = (cells: Array<string | number>): string =>
  cells.map((c, i) => i === 0 ? String(c).padEnd(WIDTHS[i] ?? 0) : String(c).padStart(WIDTHS[i] ?? 0)).join('  ')
const fixed = (n: number | null, digits: number): string => n === null ? 'n/a' : n.toFixed(digits)

/** Prints the table, the Redis and logging lines. */
export function printReport (bare: TargetSummary, gateway: TargetSummary, extras: GatewayExtras, scriptCalls: number): void {
  const line = (name: string, t: TargetSummary): string =>
    row([name, t.requestsPerSecond, t.latencyP50Ms, t.latencyP99Ms, t.cpuMicrosPerRequest ?? 'n/a', t.requests, t.non2xx,
      `${mb(t.rssBeforeBytes)} → ${mb(t.rssAfterBytes)}`])
  console.log('')
  console.log(row(['', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'requests', 'non-2xx', 'RSS before → after MB']))
  console.log(line('bare proxy', bare))
  console.log(line('gateway', gateway))
  console.log(row(['gateway/bare', fixed(ratio(gateway.requestsPerSecond, bare.requestsPerSecond), 2), '',
    fixed(ratio(gateway.latencyP99Ms, bare.latencyP99Ms), 2),
    fixed(ratio(gateway.cpuMicrosPerRequest ?? 0, bare.cpuMicrosPerRequest ?? 0), 2), '', '', '']))
  console.log('')
  console.log(`Redis commands per gateway request: ${fixed(extras.scriptCallsPerRequest, 2)} EVALSHA/EVAL ` +
    `(${scriptCalls} script calls / ${extras.requestsSent} requests sent; the gateway answered ${extras.requestsCountedByGateway}, ` +
    'the rest were cut off when the run stopped)')
  const others = Object.entries(extras.otherCommands).map(([k, v]) => `${k} ${v}`).join(', ')
  console.log(`  other commands sent per request: ${fixed(extras.otherCommandsPerRequest, 3)} (${others === '' ? 'none' : others}; ` +
    'PING is the 1 s readiness health check; the HMGET/TIME/GET/SET that commandstats counts inside the script are not round trips)')
  console.log(`Gateway log: ${extras.logLines} lines, ${mb(extras.logBytes)} MB, info level, written through an async pino file destination`)
}
