// src/lib/gateway-paths.ts: which listener a matched route belongs to, and the route label that
// metrics and logs share, from registered route patterns (never raw request paths).
import t from 'tap'
import { ownPathOf, surfaceOf, type Surface } from '../../src/lib/gateway-paths.js'

const SURFACES: Array<[string | undefined, Surface]> = [
  ['/healthz', 'both'],
  ['/readyz', 'both'],
  ['/metrics', 'management'],
  ['/docs', 'management'],
  ['/docs/', 'management'],
  ['/docs/json', 'management'],
  ['/docs/static/*', 'management'],
  ['/admin/tokens', 'management'],
  ['/admin/tokens/:id', 'management'],
  ['/*', 'proxy'], // the proxy's catch-all, whatever path it matched
  [undefined, 'proxy'], // the not-found handler
  ['/metricsX', 'proxy'],
  ['/docsy', 'proxy'],
  ['/administrator', 'proxy'],
  ['/healthz/x', 'proxy'],
  ['/api/v1/metrics', 'proxy']
]

t.test('surfaceOf', async (t) => {
  for (const [url, surface] of SURFACES) t.equal(surfaceOf(url), surface, `${String(url)} → ${surface}`)
})

t.test('ownPathOf', async (t) => {
  const cases: Array<[string | undefined, string | null]> = [
    ['/healthz', '/healthz'], ['/readyz', '/readyz'], ['/metrics', '/metrics'], ['/docs/json', '/docs'],
    ['/docs/static/*', '/docs'], ['/admin/tokens/:id', '/admin'], ['/*', null], [undefined, null], ['/adminx', null]
  ]
  for (const [url, own] of cases) t.equal(ownPathOf(url), own, `${String(url)} → ${String(own)}`)
})
