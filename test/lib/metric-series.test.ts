// SeriesCounter and SeriesHistogram against prom-client's own Counter and Histogram, fed the same
// observations: the same get() objects, the same exposition text and the same sums over workers,
// whatever the values (bounds, between, above the last, zero, negative), label sets and scrapes
// in between.
import { test } from 'tap'
import fc from 'fast-check'
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client'
import { SeriesCounter, SeriesHistogram, type CounterSeries, type HistogramSeries } from '../../src/lib/metric-series.js'

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const LABELS = [{ route: '/a', method: 'GET' }, { route: '/b', method: 'GET' }, { route: '/a', method: 'POST' }, { route: 'x"y\\z\n', method: 'OTHER' }]

/** A step: observe `value` in the series of LABELS[series], or (series = -1) scrape both registries. */
type Step = [number, number]
const value = fc.oneof(fc.constantFrom(...BUCKETS, 0, -1, 31, 1e-9), fc.double({ min: -1, max: 100, noNaN: true, noDefaultInfinity: true }))
const steps = fc.array(fc.tuple(fc.integer({ min: -1, max: LABELS.length - 1 }), value), { maxLength: 200 })

/** Both implementations of one histogram, fed the same steps; series made on first observation. */
async function histograms (run: Step[]): Promise<{ ours: Registry, theirs: Registry, scrapes: Array<[string, string]> }> {
  const ours = new Registry()
  const theirs = new Registry()
  const h = new SeriesHistogram('t_seconds', 'help', BUCKETS, ours)
  const p = new Histogram({ name: 't_seconds', help: 'help', labelNames: ['route', 'method'], buckets: BUCKETS, registers: [theirs] })
  const series = new Map<number, HistogramSeries>()
  const scrapes: Array<[string, string]> = []
  for (const [i, v] of run) {
    if (i < 0) {
      scrapes.push([await ours.metrics(), await theirs.metrics()])
      continue
    }
    let s = series.get(i)
    if (s === undefined) series.set(i, s = h.series(LABELS[i] as typeof LABELS[0]))
    s.observe(v)
    p.observe(LABELS[i] as typeof LABELS[0], v)
  }
  return { ours, theirs, scrapes }
}

test('a histogram gives what prom-client gives, series for series and byte for byte', async (t) => {
  await fc.assert(fc.asyncProperty(steps, async (run) => {
    const { ours, theirs, scrapes } = await histograms(run)
    for (const [a, b] of scrapes) t.equal(a, b)
    t.strictSame(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON())
    t.equal(await ours.metrics(), await theirs.metrics())
  }), { numRuns: 60 })
})

test('histograms summed over workers are what prom-client sums', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(steps, { minLength: 1, maxLength: 3 }), async (runs) => {
    const built = await Promise.all(runs.map(histograms))
    const sum = async (which: 'ours' | 'theirs'): Promise<string> =>
      await AggregatorRegistry.aggregate(await Promise.all(built.map(async (b) => await b[which].getMetricsAsJSON()))).metrics()
    t.equal(await sum('ours'), await sum('theirs'))
  }), { numRuns: 30 })
})

test('a histogram without labels exists from the start, as prom-client\'s does', async (t) => {
  const ours = new Registry()
  const theirs = new Registry()
  const s = new SeriesHistogram('r_seconds', 'help', [0.1, 1], ours).series({})
  const p = new Histogram({ name: 'r_seconds', help: 'help', buckets: [0.1, 1], registers: [theirs] })
  t.equal(await ours.metrics(), await theirs.metrics())
  s.observe(0.5)
  p.observe(0.5)
  t.equal(await ours.metrics(), await theirs.metrics())
  t.match(await ours.metrics(), /^r_seconds_bucket\{le="1"\} 1$/m)
})

test('non-finite values are dropped, not counted', async (t) => {
  const registry = new Registry()
  const s = new SeriesHistogram('n_seconds', 'help', [1], registry).series({})
  s.observe(Number.NaN)
  s.observe(Number.POSITIVE_INFINITY)
  s.observe(0.5)
  t.equal(s.count, 1)
  t.equal(s.sum, 0.5)
  t.throws(() => new Histogram({ name: 'n2', help: 'h', registers: [new Registry()] }).observe(Number.NaN), 'prom-client refuses them too')
})

test('buckets must be ascending', async (t) => {
  t.throws(() => new SeriesHistogram('b_seconds', 'help', [1, 0.5], new Registry()), RangeError)
  t.throws(() => new SeriesHistogram('b_seconds', 'help', [1, 1], new Registry()), RangeError)
})

test('a counter gives what prom-client gives, including series made at zero up front', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: -1, max: 3 }), { maxLength: 100 }), async (run) => {
    const ours = new Registry()
    const theirs = new Registry()
    const c = new SeriesCounter('c_total', 'help', ours)
    const p = new Counter({ name: 'c_total', help: 'help', labelNames: ['result'], registers: [theirs] })
    const series = new Map<number, CounterSeries>([[0, c.series({ result: 'r0' })]])
    p.inc({ result: 'r0' }, 0)
    for (const i of run) {
      if (i < 0) {
        t.equal(await ours.metrics(), await theirs.metrics())
        continue
      }
      let s = series.get(i)
      if (s === undefined) series.set(i, s = c.series({ result: `r${i}` }))
      if (i % 2 === 0) s.inc()
      else s.value++
      p.inc({ result: `r${i}` })
    }
    t.strictSame(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON())
    t.equal(await ours.metrics(), await theirs.metrics())
  }), { numRuns: 60 })
})

test('reset zeroes every series and keeps them exported', async (t) => {
  const registry = new Registry()
  const c = new SeriesCounter('c_total', 'help', registry)
  const h = new SeriesHistogram('h_seconds', 'help', [1], registry)
  const cs = c.series({ result: 'a' })
  const hs = h.series({ route: '/a' })
  cs.inc()
  hs.observe(0.5)
  registry.resetMetrics()
  const text = await registry.metrics()
  t.match(text, /^c_total\{result="a"\} 0$/m)
  t.match(text, /^h_seconds_count\{route="\/a"\} 0$/m)
  t.match(text, /^h_seconds_bucket\{le="1",route="\/a"\} 0$/m)
  cs.inc()
  t.match(await registry.metrics(), /^c_total\{result="a"\} 1$/m)
})
