// The per-route request series: method and status class labels from indexes (an unusual method is
// OTHER, a status outside 1xx–5xx is clamped), series made on first observation and in that order.
import { test } from 'tap'
import { Registry } from 'prom-client'
import { SeriesCounter, SeriesHistogram } from '../../src/lib/metric-series.js'
import { METHOD_LABELS, RouteSeries, STATUS_CLASSES, methodIndex, statusClassIndex } from '../../src/lib/route-series.js'

test('methods map to their label, anything else to OTHER', async (t) => {
  const rows: Array<[string, string]> = [
    ['GET', 'GET'], ['HEAD', 'HEAD'], ['POST', 'POST'], ['PUT', 'PUT'], ['PATCH', 'PATCH'], ['DELETE', 'DELETE'],
    ['OPTIONS', 'OPTIONS'], ['PROPFIND', 'OTHER'], ['get', 'OTHER'], ['', 'OTHER'], ['CONNECT', 'OTHER'], ['__proto__', 'OTHER']
  ]
  for (const [method, label] of rows) t.equal(METHOD_LABELS[methodIndex(method)], label, method)
})

test('status codes map to their class, clamped to 1xx–5xx', async (t) => {
  const rows: Array<[number, string]> = [
    [100, '1xx'], [101, '1xx'], [199, '1xx'], [200, '2xx'], [204, '2xx'], [299, '2xx'], [304, '3xx'], [400, '4xx'],
    [499, '4xx'], [500, '5xx'], [599, '5xx'], [600, '5xx'], [999, '5xx'], [99, '1xx'], [0, '1xx'], [-5, '1xx'], [Number.NaN, '1xx']
  ]
  for (const [status, label] of rows) t.equal(STATUS_CLASSES[statusClassIndex(status)], label, String(status))
})

test('series are made on first observation, with their labels, in that order', async (t) => {
  const registry = new Registry()
  const metrics = {
    requests: new SeriesCounter('req_total', 'h', registry),
    duration: new SeriesHistogram('dur_seconds', 'h', [0.1, 1], registry),
    upstream: new SeriesHistogram('up_seconds', 'h', [0.1, 1], registry)
  }
  const a = new RouteSeries('/a', metrics)
  const b = new RouteSeries('/b', metrics)
  t.equal((await metrics.requests.get()).values.length, 0, 'nothing before the first request')
  b.observe('POST', 503, 0.5)
  a.observe('GET', 200, 0.05)
  a.observe('GET', 201, 2)
  a.observe('BREW', 418, 0.1)
  b.observe('POST', 502, 0.01)
  a.observeUpstream(0.02)
  a.observeUpstream(0.03)
  t.strictSame((await metrics.requests.get()).values, [
    { value: 2, labels: { route: '/b', method: 'POST', status_class: '5xx' } },
    { value: 2, labels: { route: '/a', method: 'GET', status_class: '2xx' } },
    { value: 1, labels: { route: '/a', method: 'OTHER', status_class: '4xx' } }
  ])
  const counts = (await metrics.duration.get()).values.filter((v) => v.metricName === 'dur_seconds_count')
  t.strictSame(counts.map((v) => [v.labels, v.value]), [
    [{ route: '/b', method: 'POST' }, 2],
    [{ route: '/a', method: 'GET' }, 2],
    [{ route: '/a', method: 'OTHER' }, 1]
  ])
  const up = (await metrics.upstream.get()).values
  t.strictSame(up.filter((v) => v.metricName === 'up_seconds_count').map((v) => [v.labels, v.value]), [[{ route: '/a' }, 2]])
  t.equal(up.find((v) => v.metricName === 'up_seconds_sum')?.value, 0.05)
})
