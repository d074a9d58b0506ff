import { test } from 'tap'
import fc from 'fast-check'
import { normaliseTarget } from '../../src/lib/path.js'

// [raw request-target, expected path or 'reject', expected query (default '')]
type Row = [string, string, string?]

const benign: Row[] = [
  ['/', '/'],
  ['/api/v1/users', '/api/v1/users'],
  ['/api/v1/users/', '/api/v1/users/'],
  ['/a/b;c=d,e', '/a/b;c=d,e'],
  ["/!$&'()*+,;=:@-._~", "/!$&'()*+,;=:@-._~"],
  ['/*', '/*'],
  ['/file.tar.gz', '/file.tar.gz'],
  ['/.well-known/x', '/.well-known/x'],
  ['/a/b..', '/a/b..'],
  ['/a/b/./c', '/a/b/c'],
  ['/a/b/../c', '/a/c'],
  ['/a/b/.', '/a/b/'],
  ['/a/b/..', '/a/'],
  ['/a/..', '/'],
  ['/.', '/'],
  ['/a/b/../', '/a/'],
  ['/a//b', '/a/b'],
  ['//', '/'],
  ['///a//b', '/a/b'],
  ['/a//', '/a/'],
  ['/a/%2e/b', '/a/b'],
  ['/a/b/%2E%2e/c', '/a/c'],
  ['/a/b/.%2e', '/a/'],
  ['/%7e', '/~'],
  ['/%7Euser', '/~user'],
  ['/%41%62%2D%5F', '/Ab-_'],
  ['/a%3bb', '/a%3Bb'],
  ['/a%20b', '/a%20b'],
  ['/a%3fb%23c', '/a%3Fb%23c'],
  ['/100%25', '/100%25'],
  ['/%25zz', '/%25zz'],
  ['/caf%c3%a9', '/caf%C3%A9'],
  ['/%E6%97%A5%E6%9C%AC', '/%E6%97%A5%E6%9C%AC'],
  ['/a{b}|c', '/a%7Bb%7D%7Cc'],
  ['/x?a=../../etc&b=%2F%2e%252e', '/x', '?a=../../etc&b=%2F%2e%252e'],
  ['/x?', '/x', '?'],
  ['/a/../b?q=1/..//', '/b', '?q=1/..//'],
  ['/x?\\;%zz%00', '/x', '?\\;%zz%00']
]

const hostile: Row[] = [
  ['', 'reject'],
  ['*', 'reject'],
  ['http://evil/x', 'reject'],
  ['evil.example:443', 'reject'],
  ['?a=1', 'reject'],
  ['/a#frag', 'reject'],
  ['/a?b#frag', 'reject'],
  ['/..', 'reject'],
  ['/../', 'reject'],
  ['/a/../..', 'reject'],
  ['/a/...', 'reject'],
  ['/a/..a', 'reject'],
  ['/a/b../c', 'reject'],
  ['/a/..b/', 'reject'],
  ['/a/%2e%2e%2e', 'reject'],
  ['/a/../../b', 'reject'],
  ['/%2e%2e', 'reject'],
  ['/%2E%2e/', 'reject'],
  ['/.%2e/etc', 'reject'],
  ['/%2e./x', 'reject'],
  ['/a%2Fb', 'reject'],
  ['/a%2fb', 'reject'],
  ['/a%5Cb', 'reject'],
  ['/a%5cb', 'reject'],
  ['/a\\b', 'reject'],
  ['/a/..\\b', 'reject'],
  ['/a/..;/b', 'reject'],
  ['/a/..;x/b', 'reject'],
  ['/a/.;/b', 'reject'],
  ['/a/.;x=1', 'reject'],
  ['/a/..%3B/b', 'reject'],
  ['/a/%2e%2e;/b', 'reject'],
  ['/a/%2E%2E%3bx/b', 'reject'],
  ['/a/;/b', 'reject'],
  ['/;x', 'reject'],
  ['/a%00', 'reject'],
  ['/a%0a', 'reject'],
  ['/a%0D%0AX-Evil:1', 'reject'],
  ['/a%7f', 'reject'],
  ['/a/%252e%252e/b', 'reject'],
  ['/a%252F', 'reject'],
  ['/a%25%32%65', 'reject'],
  ['/a%25%32e', 'reject'],
  ['/%zz', 'reject'],
  ['/a%2', 'reject'],
  ['/a%', 'reject'],
  ['/a%%41', 'reject'],
  ['/%EF%BC%8E%EF%BC%8E', 'reject'],
  ['/a/%EF%BC%8E%EF%BC%8E/b', 'reject'],
  ['/a%EF%BC%8Fb', 'reject'],
  ['/a%EF%BC%BCb', 'reject'],
  ['/%E2%80%A4', 'reject'],
  ['/%E2%80%A5', 'reject'],
  ['/%C0%AE%C0%AE', 'reject'],
  ['/%C0%AF', 'reject'],
  ['/%FF', 'reject'],
  ['/%C3', 'reject'],
  ['/%C3%41', 'reject'],
  ['/%ED%A0%80', 'reject'],
  ['/a\tb', 'reject'],
  ['/a b', 'reject'],
  ['/a\u0000', 'reject'],
  ['/a\u007f', 'reject'],
  ['/caf\u00e9', 'reject'],
  ['/\uff0e\uff0e', 'reject'],
  ['/x?a b', 'reject'],
  ['/x?a\r\nX-Evil: 1', 'reject']
]

test('normaliseTarget table', async (t) => {
  for (const [input, expected, query = ''] of [...benign, ...hostile]) {
    const result = normaliseTarget(input)
    const label = JSON.stringify(input)
    if (expected === 'reject') {
      t.equal(result.ok, false, `${label} is rejected`)
      if (!result.ok) t.ok(result.reason.length > 0 && result.reason.length < 200, `${label} has a short reason`)
    } else {
      t.same(result, { ok: true, path: expected, query }, `${label} -> ${expected}`)
    }
  }
  t.ok(hostile.length >= 25)
})

test('a rejection reason never echoes huge input', async (t) => {
  const long = 'x'.repeat(10_000)
  for (const input of [`/${long}/..;${long}`, `/%C0${long}`, `/%${long}`, `/%252e${long}`]) {
    const result = normaliseTarget(input)
    t.equal(result.ok, false)
    if (!result.ok) t.ok(result.reason.length < 200, result.reason)
  }
})

// Pieces chosen to collide with every rule; `?`, `#` and raw controls exercise rejection too.
const piece = fc.constantFrom(
  '/', '/', '/', 'a', 'Z', '~', '-', '.', '..', ';', '=', '%', '%2e', '%2E', '%2f', '%2F',
  '%5c', '%25', '%41', '%7e', '%3b', '%3B', '%20', '%32', '%65', '%C3%A9', '%c3', '%a9',
  '%EF%BC%8E', '%E2%80%A4', '%C0%AE', '%FF', '\\', '?', '#', ' ', '\t', '{', '|', '\u00e9', 'x'
)
const target = fc.oneof(
  fc.array(piece, { maxLength: 24 }).map((parts) => '/' + parts.join('')),
  fc.string({ unit: 'binary-ascii' }).map((s) => '/' + s)
)

test('accepted paths are fixed points and carry nothing a backend could reread', async (t) => {
  fc.assert(fc.property(target, (raw) => {
    const first = normaliseTarget(raw)
    if (!first.ok) return
    const q = raw.indexOf('?')
    t.equal(first.query, q === -1 ? '' : raw.slice(q))
    const again = normaliseTarget(first.path)
    if (!again.ok || again.path !== first.path) t.fail(`not idempotent: ${JSON.stringify(raw)}`)
    const { path } = first
    if (!path.startsWith('/') || path.includes('//') || path.includes('\\') ||
        /(^|\/)\.\.?(\/|$)/.test(path) || /%(2f|5c|25[0-9a-f]{2})/i.test(path)) {
      t.fail(`unsafe output ${JSON.stringify(path)} from ${JSON.stringify(raw)}`)
    }
  }), { numRuns: 5000 })
  t.pass('property held')
})

// WHATWG URL resolves dot segments (including `%2e` forms) independently of our code; where it
// does not have to clamp at the root and there are no empty segments, both must agree.
const segment = fc.constantFrom('a', 'b', '.', '..', '%2e', '%2E%2e', '.%2e', '%2e.')
test('dot-segment resolution agrees with the WHATWG URL parser', async (t) => {
  fc.assert(fc.property(fc.array(segment, { minLength: 1, maxLength: 10 }), fc.boolean(), (segs, slash) => {
    const raw = '/' + segs.join('/') + (slash ? '/' : '')
    const ours = normaliseTarget(raw)
    if (ours.ok && ours.path !== new URL(raw, 'http://h').pathname) {
      t.fail(`${raw}: ${ours.path} vs ${new URL(raw, 'http://h').pathname}`)
    }
  }), { numRuns: 2000 })
  t.pass('agreed')
})
