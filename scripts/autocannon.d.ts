// The slice of autocannon 9's programmatic API that scripts/bench.ts uses (the package ships no types).
declare module 'autocannon' {
  export interface Options {
    url: string
    connections?: number
    pipelining?: number
    /** Seconds. */
    duration?: number
    /** Seconds before a request counts as a timeout. */
    timeout?: number
    method?: string
    headers?: Record<string, string>
    /** Requests per second over all connections (a paced run). */
    overallRate?: number
    /** Responses whose body differs are counted in `mismatches`. */
    expectBody?: string
  }

  export interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    total: number
    p50: number
    p90: number
    p97_5: number
    p99: number
  }

  export interface Result {
    duration: number
    errors: number
    timeouts: number
    mismatches: number
    non2xx: number
    resets: number
    '2xx': number
    statusCodeStats: Record<string, { count: number }>
    /** Milliseconds; only 2xx answers are recorded. */
    latency: Histogram & { totalCount: number }
    /** Per-second samples; `total` is the number of completed requests. */
    requests: Histogram & { sent: number }
    throughput: Histogram
  }

  /** Without a callback it returns a thenable tracker that resolves with the result. */
  export default function autocannon (opts: Options): PromiseLike<Result>
}
