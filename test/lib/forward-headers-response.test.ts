// The response-side header rules of src/lib/forward-headers.ts, table-driven: Via, which responses
// have a body, when the Trailer header is announced, which trailer fields are forwarded.
import { test } from 'tap'
import { appendVia, forwardableTrailers, responseHasBody, trailerAnnouncement, trailerFields } from '../../src/lib/forward-headers.js'

test('appendVia appends the gateway\'s hop after any Via already there, by pseudonym', async (t) => {
  const rows: Array<[string | string[] | undefined, string, string]> = [
    [undefined, '1.1', '1.1 portcullis'],
    ['', '1.1', '1.1 portcullis'],
    [undefined, '1.0', '1.0 portcullis'],
    [undefined, '2.0', '2 portcullis'],
    ['1.0 fred, 1.1 p.example (Apache/1.1)', '1.1', '1.0 fred, 1.1 p.example (Apache/1.1), 1.1 portcullis'],
    [['1.1 a', '1.1 b'], '1.1', '1.1 a, 1.1 b, 1.1 portcullis']
  ]
  for (const [existing, version, want] of rows) t.equal(appendVia(existing, version), want, `${JSON.stringify(existing)} over ${version}`)
})

test('responseHasBody: HEAD, 1xx, 204 and 304 have none', async (t) => {
  const rows: Array<[number, string, boolean]> = [
    [200, 'GET', true], [500, 'POST', true], [200, 'HEAD', false], [204, 'GET', false], [304, 'GET', false], [103, 'GET', false], [205, 'GET', true]
  ]
  for (const [status, method, want] of rows) t.equal(responseHasBody(status, method), want, `${method} ${status}`)
})

test('trailerAnnouncement: only where the client gets a chunked body', async (t) => {
  const owned = new Set(['x-request-id'])
  const rows: Array<[Record<string, string | undefined>, { statusCode: number, method: string, httpVersion: string }, string | undefined]> = [
    [{ trailer: 'X-Checksum' }, { statusCode: 200, method: 'GET', httpVersion: '1.1' }, 'X-Checksum'],
    [{ trailer: 'X-A, Connection,X-B, Content-Length, X-Request-Id' }, { statusCode: 200, method: 'GET', httpVersion: '1.1' }, 'X-A, X-B'],
    [{ trailer: 'X-Checksum' }, { statusCode: 200, method: 'GET', httpVersion: '1.0' }, undefined],
    [{ trailer: 'X-Checksum' }, { statusCode: 200, method: 'HEAD', httpVersion: '1.1' }, undefined],
    [{ trailer: 'X-Checksum' }, { statusCode: 304, method: 'GET', httpVersion: '1.1' }, undefined],
    [{ trailer: 'X-Checksum', 'content-length': '2' }, { statusCode: 200, method: 'GET', httpVersion: '1.1' }, undefined],
    [{ trailer: 'connection' }, { statusCode: 200, method: 'GET', httpVersion: '1.1' }, undefined],
    [{}, { statusCode: 200, method: 'GET', httpVersion: '1.1' }, undefined]
  ]
  for (const [headers, response, want] of rows) t.equal(trailerAnnouncement(headers, response, owned), want, JSON.stringify([headers, response]))
})

test('forwardableTrailers drops hop-by-hop, framing and gateway-owned fields, keeps repeats', async (t) => {
  t.same(forwardableTrailers({
    'x-checksum': 'abc', 'x-multi': ['1', '2'], connection: 'close', 'transfer-encoding': 'chunked', 'content-length': '5', 'x-request-id': 'spoof', 'x-none': undefined
  }, new Set(['x-request-id'])), [['x-checksum', 'abc'], ['x-multi', '1'], ['x-multi', '2']])
})

test('trailerFields: undici\'s raw trailer bytes as the object forwardableTrailers reads', async (t) => {
  const raw = ['Grpc-Status', '0', 'X-Sum', 'a', 'x-sum', 'b', 'X-Latin', '\u00e9'].map((s) => Buffer.from(s, 'latin1'))
  const fields = trailerFields(raw)
  t.same({ ...fields }, { 'grpc-status': '0', 'x-sum': ['a', 'b'], 'x-latin': '\u00e9' }, 'names lower-cased, repeats a list in first place, latin1 values')
  t.equal(Object.getPrototypeOf(fields), null, 'no prototype: a field named __proto__ is a plain field')
  t.same(Object.entries(trailerFields([Buffer.from('__proto__'), Buffer.from('x')])), [['__proto__', 'x']], 'a field named __proto__ is a plain field')
  t.same(forwardableTrailers(fields), [['grpc-status', '0'], ['x-sum', 'a'], ['x-sum', 'b'], ['x-latin', '\u00e9']])
  t.same({ ...trailerFields([]) }, {})
})
