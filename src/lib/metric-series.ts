/**
 * A counter and a histogram that prom-client's Registry exports exactly like its own Counter and
 * Histogram (same `get()` objects, so the same text and the same sums in AggregatorRegistry), but
 * whose series are plain objects the caller creates once and then records into directly: no label
 * object, hash or validation per observation. prom-client hashes the label set on every call,
 * which on a proxy's hot path costs more than the rest of the recording (docs/performance.md).
 *
 * Series are exported in the order they were created, as prom-client exports in the order of first
 * observation: create a series when it is first recorded into (or up front, for series that must
 * exist from the start with zero).
 */
import type { Metric, Registry } from 'prom-client'

/** Label values of one series, in the order they are printed. */
export type Labels = Readonly<Record<string, string | number>>

/** One counter series; hot code increments `value` (or calls `inc`). */
export class CounterSeries {
  value = 0
  constructor (readonly labels: Labels) {}

  /** Adds one. */
  inc (): void {
    this.value++
  }
}

/** One histogram series: per-bucket (not cumulative) counts, plus sum and count. */
export class HistogramSeries {
  /** `counts[i]`: observations in (bounds[i-1], bounds[i]]; the last slot is above every bound. */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor (readonly bounds: Float64Array, readonly labels: Labels) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  /** Records one value; a non-finite one is dropped (prom-client throws on it). */
  observe (value: number): void {
    if (!Number.isFinite(value)) return
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > (bounds[i] as number)) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

/** A value of a `get()` result, shaped as prom-client's own. */
interface Sample { value: number, labels: Labels, metricName?: string, exemplar?: null }
interface MetricJson { name: string, help: string, type: 'counter' | 'histogram', values: Sample[], aggregator: 'sum' }

// Our objects implement what Registry and AggregatorRegistry read of a metric (name, type, get,
// reset); prom-client's types only name its own classes.
function register (registry: Registry, metric: object): void {
  registry.registerMetric(metric as Metric)
}

/** A counter whose series are created by `series(labels)` and incremented without a lookup. */
export class SeriesCounter {
  readonly type = 'counter'
  readonly aggregator = 'sum'
  readonly #series: CounterSeries[] = []

  constructor (readonly name: string, readonly help: string, registry: Registry) {
    register(registry, this)
  }

  /** A new series, exported from now on (at 0 until counted); create each label set once. */
  series (labels: Labels): CounterSeries {
    const s = new CounterSeries(labels)
    this.#series.push(s)
    return s
  }

  /** The metric as prom-client's Counter.get() gives it. */
  async get (): Promise<MetricJson> {
    const values: Sample[] = this.#series.map((s) => ({ value: s.value, labels: s.labels }))
    return { help: this.help, name: this.name, type: this.type, values, aggregator: this.aggregator }
  }

  /** Zeroes every series (Registry.resetMetrics); they stay exported, since their holders keep them. */
  reset (): void {
    for (const s of this.#series) s.value = 0
  }
}

/** A histogram whose series are created by `series(labels)` and observed without a lookup. */
export class SeriesHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #bounds: Float64Array
  readonly #series: HistogramSeries[] = []

  /** `buckets`: upper bounds, ascending, as prom-client's `buckets` option. */
  constructor (readonly name: string, readonly help: string, buckets: readonly number[], registry: Registry) {
    for (let i = 1; i < buckets.length; i++) {
      if (!((buckets[i] as number) > (buckets[i - 1] as number))) throw new RangeError(`${name}: buckets must be ascending`)
    }
    this.#bounds = Float64Array.from(buckets)
    register(registry, this)
  }

  /** A new series, exported from now on; create each label set once. */
  series (labels: Labels): HistogramSeries {
    const s = new HistogramSeries(this.#bounds, labels)
    this.#series.push(s)
    return s
  }

  /** The metric as prom-client's Histogram.get() gives it: cumulative buckets, `+Inf`, sum, count. */
  async get (): Promise<MetricJson> {
    const bucket = `${this.name}_bucket`
    const values: Sample[] = []
    for (const s of this.#series) {
      let cumulative = 0
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += s.counts[i] as number
        values.push({ value: cumulative, metricName: bucket, exemplar: null, labels: { le: this.#bounds[i] as number, ...s.labels } })
      }
      values.push({ value: s.count, metricName: bucket, exemplar: null, labels: { le: '+Inf', ...s.labels } })
      values.push({ value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined, labels: { ...s.labels } })
      values.push({ value: s.count, metricName: `${this.name}_count`, exemplar: undefined, labels: { ...s.labels } })
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  /** Zeroes every series (Registry.resetMetrics); they stay exported, since their holders keep them. */
  reset (): void {
    for (const s of this.#series) {
      s.counts.fill(0)
      s.sum = 0
      s.count = 0
    }
  }
}
