import { test } from 'tap'
import { jsonNumber, jsonString, requestLineProps, REQUEST_LINE_KEYS, type RequestLine } from '../../src/lib/request-line.js'

// Strings a client controls: the path, X-Request-Id, the method, X-Forwarded-For.
const HOSTILE = [
  '', 'plain', '/api/v1/users/7', 'a"b', 'a\\b', '\\', '"', '\\"', '"}', '","level":60,"x":"',
  '\n', '\r\n', '\t', '\b\f', '\u0000', '\u0001\u001f', '\u007f', '\u0080\u00ff', 'é/ü/ß', '日本語', '😀',
  '\u2028\u2029', '\ud800', '\udfff', 'a\ud83db', '\ude00\ud83d', '\ud83d\ude00\ud83d', '%22%5C%00',
  '/api/' + 'x'.repeat(300) + '"', '</script>', '\u001b[31mred'
]

/** A test name that stays one printable line, whatever `s` holds. */
const nameOf = (s: string): string => JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))

test('jsonString writes what JSON.stringify writes', async (t) => {
  for (const s of HOSTILE) t.equal(jsonString(s), JSON.stringify(s), nameOf(s))
  let bad = 0
  for (let i = 0; i < 20_000; i++) {
    // Random UTF-16 code units, weighted towards the ones that need escaping.
    const units = Array.from({ length: Math.floor(Math.random() * 12) }, () => {
      const r = Math.random()
      return r < 0.3 ? Math.floor(Math.random() * 0x80) : r < 0.5 ? 0xd800 + Math.floor(Math.random() * 0x800) : Math.floor(Math.random() * 0x10000)
    })
    const s = String.fromCharCode(...units)
    if (jsonString(s) !== JSON.stringify(s)) bad++
  }
  t.equal(bad, 0, '20 000 random strings')
})

const line = (over: Partial<RequestLine>): RequestLine => ({
  reqId: 'b2c1a4e0-1f6d-4a51-9d3c-0f6a1c2b3d4e',
  method: 'GET',
  path: '/api/item/7',
  route: '/api',
  status: 200,
  code: undefined,
  remoteAddress: '127.0.0.1',
  listener: undefined,
  ms: 1.23,
  consumer: 'tok_k3xq7m2vb4pa',
  rateLimit: 'allowed',
  upstreamFailure: undefined,
  ...over
})

/** The members as the JSON object they are part of. */
const asObject = (props: string): string => '{' + props.slice(1) + '}'

test('the fields are JSON.stringify of the same object: order, omission, nulls, escapes', async (t) => {
  const cases: RequestLine[] = [
    line({}),
    line({ code: 'CIRCUIT_OPEN', status: 503, consumer: undefined, rateLimit: undefined }),
    line({ listener: 'management', route: null, path: null }),
    line({ upstreamFailure: 'reset', status: 502, code: 'UPSTREAM_ERROR', ms: 0 }),
    line({ path: undefined, remoteAddress: undefined }), // a gone client's address: left out, as pino does
    line({ ms: Number.NaN }), line({ ms: Number.POSITIVE_INFINITY }), line({ ms: -0 }), line({ ms: 1e21 }), line({ ms: 0.1 + 0.2 })
  ]
  for (const s of HOSTILE) cases.push(line({ reqId: s, method: s, path: s, route: s, code: s, remoteAddress: s, listener: s, consumer: s, rateLimit: s, upstreamFailure: s }))
  for (const f of cases) {
    const props = requestLineProps(f)
    t.equal(asObject(props), JSON.stringify(f), nameOf(JSON.stringify(f)))
    const back = JSON.parse(asObject(props)) as Record<string, unknown>
    t.same(back, JSON.parse(JSON.stringify(f)), 'parses back to the same values')
  }
  t.same(Object.keys(JSON.parse(asObject(requestLineProps(line({ code: 'X', listener: 'management', upstreamFailure: 'dns' }))))), REQUEST_LINE_KEYS, 'every key, in REQUEST_LINE_KEYS order')
})

test('jsonNumber writes what String() writes, and null where JSON does', async (t) => {
  let bad = 0
  for (let h = 0; h <= 2_000_000; h++) if (jsonNumber(h / 100) !== String(h / 100)) bad++
  t.equal(bad, 0, 'every duration in hundredths up to 20 000 ms')
  const others = [0, -0, 1, -1, -1.5, 0.1 + 0.2, 1 / 3, 1e15, 1e15 / 100 + 0.5, 9007199254740991, 1e21, 1e-7, 123456789.12, 5e-324, Number.MAX_VALUE]
  for (let i = 0; i < 10_000; i++) others.push(Math.round(Math.random() * 1e9) / 100, Math.random() * 1000, Math.round(Math.random() * 1e12) / 100)
  for (const v of others) if (jsonNumber(v) !== String(v)) bad++
  t.equal(bad, 0, 'other numbers: as String()')
  for (const v of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) t.equal(jsonNumber(v), 'null', String(v))
})
