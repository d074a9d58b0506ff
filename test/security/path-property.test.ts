// Property: whatever request target a client sends, a token allowed only `/api/v1/users/*` never
// gets a request to the upstream whose path a lenient backend could read as outside /api/v1/users,
// and every 200 reached the upstream with exactly the path the gateway authorised (docs/forwarding.md).
// Targets are built from hostile fragments and sent byte for byte over raw sockets.
import t from 'tap'
import fc from 'fast-check'
import { sharedRedis } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { CALM, startGateway } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { rawRequest } from '../helpers/raw-http.js'
import { normaliseTarget } from '../../src/lib/path.js'

const SEED = 20260401
const RUNS = 2000

const redis = await sharedRedis()
const up = await new Upstream().start()
const token = await createTestToken(redis.url, { allowed_routes: ['/api/v1/users/*'] })
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, LOG_LEVEL: 'warn', ROUTES: `/api/v1/users=${up.url},/api/v1/products=${up.url}` })
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
})

const FRAGMENTS = ['/', '.', '..', '%2e', '%2E', '%2f', '%2F', '%5c', '\\', ';', '%00', '%25', '%252e', '//', '?',
  'users', 'products', 'admin', '7', '%EF%BC%8E', '%E2%80%A4', ';x', '..;']
const STARTS = ['/api/v1/users', '/api/v1/products', '/api/v1', '/api', '/']

/** Decodes every valid %XX once (bytes, then UTF-8 with replacement); invalid escapes stay as they are. */
function percentDecodeOnce (s: string): string {
  const bytes: number[] = []
  for (let i = 0; i < s.length; i++) {
    const m = s[i] === '%' ? /^[0-9A-Fa-f]{2}$/.exec(s.slice(i + 1, i + 3)) : null
    if (m !== null) {
      bytes.push(parseInt(m[0], 16))
      i += 2
    } else {
      bytes.push(...Buffer.from(s[i] as string, 'utf8'))
    }
  }
  return Buffer.from(bytes).toString('utf8')
}

/**
 * The path as the most lenient backend could read it: percent-decoded until stable, NFKC
 * (full-width dots), cut at a NUL, `\` as `/`, `;params` dropped per segment, dot segments
 * resolved (clamped at the root), empty segments merged. Returns its segments.
 */
export function lenientSegments (url: string): string[] {
  let p = url.split('?')[0] ?? ''
  for (let i = 0; i < 20; i++) {
    const next = percentDecodeOnce(p).normalize('NFKC')
    if (next === p) break
    p = next
  }
  p = p.split('\0')[0] ?? ''
  const out: string[] = []
  for (const raw of p.replace(/\\/g, '/').split('/')) {
    const seg = raw.split(';')[0] ?? ''
    if (seg === '' || seg === '.') continue
    if (seg === '..') out.pop()
    else out.push(seg)
  }
  return out
}

const insideUsers = (url: string): boolean => {
  const s = lenientSegments(url)
  return s[0] === 'api' && s[1] === 'v1' && s[2] === 'users'
}

t.test('the lenient reading used below is itself hostile enough', async (t) => {
  t.same(lenientSegments('/api/v1/users/..;/products'), ['api', 'v1', 'products'])
  t.same(lenientSegments('/api/v1/users/%252e%252e/products'), ['api', 'v1', 'products'])
  t.same(lenientSegments('/api/v1/users/%EF%BC%8E%EF%BC%8E/products'), ['api', 'v1', 'products'])
  t.same(lenientSegments('/api/v1/users\\..\\products'), ['api', 'v1', 'products'])
  t.same(lenientSegments('/api/v1/users/%2e%2e%2fproducts'), ['api', 'v1', 'products'])
  t.same(lenientSegments('/api/v1/users/x%00/../../products'), ['api', 'v1', 'users', 'x'])
  t.same(lenientSegments('//api///v1/./users/7?x=/..'), ['api', 'v1', 'users', '7'])
  t.notOk(insideUsers('/api/v1/usersX'))
  t.ok(insideUsers('/api/v1/users'))
})

t.test(`property: nothing outside /api/v1/users reaches the upstream (seed ${SEED}, ${RUNS} runs)`, async (t) => {
  const part = fc.tuple(fc.constantFrom('/', '/', '', ''), fc.constantFrom(...FRAGMENTS)).map(([sep, f]) => sep + f)
  const target = fc.tuple(fc.constantFrom(...STARTS), fc.array(part, { maxLength: 8 })).map(([s, parts]) => s + parts.join(''))
  const statuses = new Map<number, number>()
  const examples: Array<[string]> = [
    ['/api/v1/users/..;/products'], ['/api/v1/users/%2e%2e/products'], ['/api/v1/users/%252e%252e/products'],
    ['/api/v1/users/..%2fproducts'], ['/api/v1/users/%2e%2e%2fproducts'], ['/api/v1/users/%EF%BC%8E%EF%BC%8E/products'],
    ['/api/v1/users/%E2%80%A4%E2%80%A4/products'], ['/api/v1/users\\..\\products'], ['/api/v1/users/%5c..%5cproducts'],
    ['/api/v1/users/;x/../../products'], ['/api/v1/users/%00/../../products'], ['/api/v1/users/..%00/products'],
    ['/api/v1/users//..//..//products'], ['/api/v1/users/%25/products'], ['/api/v1/users/7?/../../products'],
    ['/api/v1/products/../users/7'], ['/api/v1/users/./7'], ['/api/v1/users']
  ]
  await fc.assert(fc.asyncProperty(target, async (tgt) => {
    const before = up.seen.length
    const startedBefore = up.started
    const res = await rawRequest(gw.url, Buffer.from(`GET ${tgt} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: ${token.bearer}\r\n\r\n`, 'latin1'))
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
    if (![200, 400, 403, 404].includes(res.status)) throw new Error(`${tgt}: unexpected status ${res.status}`)
    const reached = up.seen.slice(before)
    for (const s of reached) {
      if (!insideUsers(s.url)) throw new Error(`${tgt}: the upstream got ${s.url}, outside /api/v1/users when read leniently`)
    }
    if (res.status !== 200) {
      if (up.started !== startedBefore) throw new Error(`${tgt}: answered ${res.status} but reached the upstream`)
      return
    }
    const n = normaliseTarget(tgt)
    if (!n.ok) throw new Error(`${tgt}: served although the gateway refuses to normalise it (${n.reason})`)
    const seen = reached[0]
    if (reached.length !== 1 || seen === undefined) throw new Error(`${tgt}: 200 but the upstream saw ${reached.length} requests`)
    if (seen.url !== n.path + n.query) throw new Error(`${tgt}: authorised ${n.path + n.query} but forwarded ${seen.url}`)
    const echoed = JSON.parse(res.body.toString('utf8')) as { url: string }
    if (echoed.url !== seen.url) throw new Error(`${tgt}: the 200 came from another request (${echoed.url})`)
    // The forwarded path is its own normal form: nothing in it can be decoded or resolved again.
    const again = normaliseTarget(seen.url)
    if (!again.ok || again.path + again.query !== seen.url) throw new Error(`${tgt}: forwarded ${seen.url}, which is not in normal form`)
  }), { seed: SEED, numRuns: RUNS, examples, endOnFailure: true })
  const summary = [...statuses].sort((a, b) => a[0] - b[0]).map(([s, c]) => `${s}×${c}`).join(' ')
  t.comment(`statuses over ${RUNS + examples.length} targets: ${summary}`)
  t.ok((statuses.get(200) ?? 0) >= 20, 'enough targets were served to make the property meaningful')
  t.ok((statuses.get(400) ?? 0) >= 20, 'and enough were refused as bad paths')
  t.ok((statuses.get(403) ?? 0) >= 5, 'and some normalised into the forbidden route')
  t.ok(up.seen.length >= 20, `${up.seen.length} requests reached the upstream, all inside /api/v1/users`)
})
