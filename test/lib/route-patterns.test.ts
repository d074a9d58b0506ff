import { test } from 'tap'
import {
  compileRoutePatterns, compiledRoutes, validateRoutePattern, PatternError, DENY_ALL,
  clearRouteCache, routeCacheSize, ROUTE_CACHE_MAX
} from '../../src/lib/route-patterns.js'

// [patterns, method, path, allowed]
const cases: Array<[string[], string, string, boolean]> = [
  // docs/tokens.md: a pattern ending in /* covers its prefix and everything below, on whole segments
  [['/api/v1/users/*'], 'GET', '/api/v1/users', true],
  [['/api/v1/users/*'], 'GET', '/api/v1/users/', true],
  [['/api/v1/users/*'], 'GET', '/api/v1/users/7', true],
  [['/api/v1/users/*'], 'POST', '/api/v1/users/7/orders', true],
  [['/api/v1/users/*'], 'GET', '/api/v1/usersX', false],
  [['/api/v1/users/*'], 'GET', '/api/v1/usersX/7', false],
  [['/api/v1/users/*'], 'GET', '/api/v1/products', false],
  [['/api/v1/users/*'], 'GET', '/api/v1', false],
  [['/api/v1/users/*'], 'GET', '/', false],
  [['/api/v1/users/*'], 'GET', '/API/v1/users', false],
  [['/api/v1/users/*', '/api/v1/products/*'], 'GET', '/api/v1/products/3', true],
  // without a trailing /*: exactly that path
  [['/api/v1/users'], 'GET', '/api/v1/users', true],
  [['/api/v1/users'], 'GET', '/api/v1/users/', true],
  [['/api/v1/users'], 'GET', '/api/v1/users/7', false],
  [['/api/v1/users'], 'GET', '/api/v1', false],
  // * inside: exactly one non-empty segment
  [['/api/*/users'], 'GET', '/api/v1/users', true],
  [['/api/*/users'], 'GET', '/api/v2/users', true],
  [['/api/*/users'], 'GET', '/api/users', false],
  [['/api/*/users'], 'GET', '/api/v1/x/users', false],
  [['/api/*/users'], 'GET', '/api//users', false],
  [['/api/*/users/*'], 'GET', '/api/v1/users/7/orders', true],
  [['/api/*/users/*'], 'GET', '/api/v1/user', false],
  // /* matches everything; / matches only the root
  [['/*'], 'GET', '/', true],
  [['/*'], 'DELETE', '/anything/at/all', true],
  [['/'], 'GET', '/', true],
  [['/'], 'GET', '/a', false],
  // method lists; HEAD is not implied by GET
  [['GET,HEAD /api/v1/users/*'], 'GET', '/api/v1/users/7', true],
  [['GET,HEAD /api/v1/users/*'], 'HEAD', '/api/v1/users', true],
  [['GET,HEAD /api/v1/users/*'], 'POST', '/api/v1/users/7', false],
  [['GET /api/v1/users/*'], 'HEAD', '/api/v1/users/7', false],
  [['get,post /x'], 'POST', '/x', true],
  [['GET /x'], 'get', '/x', true],
  [['GET /x', 'POST /y/*'], 'POST', '/x', false],
  [['GET /x', 'POST /y/*'], 'POST', '/y/1', true],
  [['DELETE /x/*', '/x/*'], 'PUT', '/x/1', true],
  // literal characters allowed in segments
  [["/a/b;c=d/e:f@g/h~i/j-k_l.m/n!$&'()+,"], 'GET', "/a/b;c=d/e:f@g/h~i/j-k_l.m/n!$&'()+,", true],
  // the matcher never allows a path that is not absolute
  [['/*'], 'GET', '', false],
  [['/*'], 'GET', 'api/v1', false],
  [[], 'GET', '/', false]
]

test('matches and non-matches', async (t) => {
  for (const [patterns, method, path, want] of cases) {
    t.equal(compileRoutePatterns(patterns).allows(method, path), want, `${JSON.stringify(patterns)} ${method} ${path}`)
  }
})

const invalid: Array<[string, RegExp]> = [
  ['', /empty/],
  ['api/v1/users', /must start with "\/"/],
  ['*', /must start with "\/"/],
  ['/api/../admin', /"\.\." segment/],
  ['/api/./users', /"\." segment/],
  ['/..', /"\.\." segment/],
  ['/a/..;x/b', /"\.\.;x" segment/],
  ['/api//users', /"\/\/"/],
  ['/api/v1/users/', /ends with "\/"/],
  ['/api\\users', /"\\"/],
  ['/api/%2e%2e/admin', /"%"/],
  ['/api?x=1', /"\?"/],
  ['/api#frag', /"#"/],
  ['/api users', /method|whitespace/],
  ['/api/us ers', /whitespace/],
  ['/api/\tusers', /control/],
  ['/api/\u0000', /control/],
  ['/api/\u007f', /control/],
  ['/api/\u0085', /control/],
  ['/api/\u00a0x', /whitespace/],
  ['/api/ü', /not allowed/],
  ['/api/"x"', /not allowed/],
  ['/api/<x>', /not allowed/],
  ['/api*', /whole segment/],
  ['/a/b*c', /whole segment/],
  ['/a/**', /whole segment/],
  ['/a/*x/b', /whole segment/],
  ['GTE /api', /unknown method "GTE"/],
  ['GET,FOO /api', /unknown method "FOO"/],
  ['G3T /api', /unknown method/],
  [' /api', /empty method list/],
  ['GET, HEAD /api', /empty method/],
  ['GET,,HEAD /api', /empty method/],
  ['GET, /api', /empty method/],
  ['GET  /api', /exactly one space/],
  ['GET\t/api', /method list/],
  ['GET /api /x', /whitespace/],
  ['/' + 'a'.repeat(1100), /longer than/]
]

test('every invalid form is refused with a reason', async (t) => {
  for (const [p, reason] of invalid) {
    const problem = validateRoutePattern(p)
    t.match(problem, reason, JSON.stringify(p))
    t.throws(() => compileRoutePatterns(['/ok/*', p]), PatternError, `compile refuses ${JSON.stringify(p)}`)
  }
  const err = (() => { try { compileRoutePatterns(['/a/b*c']) } catch (e) { return e } })()
  t.ok(err instanceof PatternError)
  t.equal((err as PatternError).pattern, '/a/b*c')
  t.match((err as PatternError).message, /invalid route pattern "\/a\/b\*c": "\*" must be a whole segment/)
})

test('valid forms are accepted', async (t) => {
  for (const p of ['/', '/*', '/api', '/api/*', '/api/*/x', 'GET /', 'get,head /a/*', 'OPTIONS,TRACE,CONNECT,PATCH,PUT,DELETE,POST /x', '/...', '/a.b/c..d']) {
    t.equal(validateRoutePattern(p), null, p)
  }
})

test('compiledRoutes caches by text and fails closed on corrupt text', async (t) => {
  clearRouteCache()
  const a = compiledRoutes('["/api/v1/users/*"]')
  t.equal(compiledRoutes('["/api/v1/users/*"]'), a, 'same text, same matcher')
  t.ok(a.allows('GET', '/api/v1/users/1'))
  t.notOk(a.allows('GET', '/api/v1/products'))
  for (const bad of ['not json', '{}', '"/x"', '[1]', '["/a*"]', '[]']) {
    const m = compiledRoutes(bad)
    t.notOk(m.allows('GET', '/a'), `corrupt ${bad} allows nothing`)
  }
  t.equal(compiledRoutes('not json'), DENY_ALL)
  clearRouteCache()
  const made = Array.from({ length: ROUTE_CACHE_MAX + 5 }, (_, i) => compiledRoutes(`["/t${i}/*"]`))
  t.equal(routeCacheSize(), ROUTE_CACHE_MAX, 'bounded')
  t.equal(compiledRoutes(`["/t${ROUTE_CACHE_MAX + 4}/*"]`), made.at(-1), 'the newest entry is kept')
  t.equal(compiledRoutes('["/t5/*"]'), made[5], 'the oldest kept entry is still the same object')
  // the oldest entries were evicted: compiling again gives a new object but the same answer
  const again = compiledRoutes('["/t0/*"]')
  t.not(again, made[0], 'the entry written first was evicted')
  t.ok(again.allows('GET', '/t0/x'))
  clearRouteCache()
})
