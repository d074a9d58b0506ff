/**
 * The per-request series of one route label: requests by method and status class, duration by
 * method, time to the upstream's head. Method and status class are array indexes, and each series
 * is created on its first observation (so it is exported in that order, as prom-client would), so
 * recording a request builds no string and hashes no label set.
 */
import type { CounterSeries, HistogramSeries, SeriesCounter, SeriesHistogram } from './metric-series.js'

/** The `method` label values; anything else is `OTHER`. */
export const METHOD_LABELS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER'] as const
const OTHER = METHOD_LABELS.length - 1
const METHOD_INDEX = new Map<string, number>(METHOD_LABELS.slice(0, OTHER).map((m, i) => [m, i]))

/** The `status_class` label values. */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const

/** Index in METHOD_LABELS of a request method (case-sensitive, as HTTP methods are). */
export function methodIndex (method: string): number {
  return METHOD_INDEX.get(method) ?? OTHER
}

/** Index in STATUS_CLASSES of a status code: its hundreds, clamped to 1xx–5xx. */
export function statusClassIndex (statusCode: number): number {
  const hundreds = Math.floor(statusCode / 100)
  return !(hundreds > 1) ? 0 : hundreds >= 5 ? 4 : hundreds - 1 // NaN counts as 1xx, never as a new label
}

/** The metrics a RouteSeries records into. */
export interface RequestMetrics {
  /** Labels `route`, `method`, `status_class`. */
  requests: SeriesCounter
  /** Labels `route`, `method`. */
  duration: SeriesHistogram
  /** Label `route`. */
  upstream: SeriesHistogram
}

/** The series of one route label, made on first use. */
export class RouteSeries {
  readonly #requests: Array<CounterSeries | undefined> = new Array(METHOD_LABELS.length * STATUS_CLASSES.length).fill(undefined)
  readonly #duration: Array<HistogramSeries | undefined> = new Array(METHOD_LABELS.length).fill(undefined)
  #upstream: HistogramSeries | undefined

  constructor (readonly route: string, private readonly metrics: RequestMetrics) {}

  /** Records one answered request. */
  observe (method: string, statusCode: number, seconds: number): void {
    const m = methodIndex(method)
    const slot = m * STATUS_CLASSES.length + statusClassIndex(statusCode)
    const requests = this.#requests[slot] ?? this.#newRequests(m, slot)
    requests.value++
    const duration = this.#duration[m] ?? this.#newDuration(m)
    duration.observe(seconds)
  }

  /** Records the time to an upstream's response head. */
  observeUpstream (seconds: number): void {
    (this.#upstream ??= this.metrics.upstream.series({ route: this.route })).observe(seconds)
  }

  #newRequests (m: number, slot: number): CounterSeries {
    const labels = { route: this.route, method: METHOD_LABELS[m] as string, status_class: STATUS_CLASSES[slot % STATUS_CLASSES.length] as string }
    return (this.#requests[slot] = this.metrics.requests.series(labels))
  }

  #newDuration (m: number): HistogramSeries {
    return (this.#duration[m] = this.metrics.duration.series({ route: this.route, method: METHOD_LABELS[m] as string }))
  }
}
