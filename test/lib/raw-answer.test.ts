// Answers written straight to a socket (src/lib/raw-answer.ts): which code for which parser refusal,
// and bytes that parse as one complete HTTP/1.1 response with the JSON body.
import t from 'tap'
import { parserRefusal, rawHttpAnswer } from '../../src/lib/raw-answer.js'
import { methodNotAllowed } from '../../src/lib/errors.js'

t.test('Node parser refusals map to gateway codes, resets to no answer', async (t) => {
  const rows: Array<[string | undefined, number | null, string | null]> = [
    ['HPE_HEADER_OVERFLOW', 431, 'HEADERS_TOO_LARGE'],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'REQUEST_TIMEOUT'],
    ['HPE_INVALID_METHOD', 400, 'BAD_REQUEST'],
    ['HPE_INVALID_URL', 400, 'BAD_PATH'],
    ['HPE_INVALID_CONTENT_LENGTH', 400, 'BAD_REQUEST'],
    ['HPE_UNEXPECTED_CONTENT_LENGTH', 400, 'BAD_REQUEST'],
    ['HPE_INVALID_CHUNK_SIZE', 400, 'BAD_REQUEST'],
    ['HPE_INVALID_HEADER_TOKEN', 400, 'BAD_REQUEST'],
    [undefined, 400, 'BAD_REQUEST'],
    ['ECONNRESET', null, null],
    ['EPIPE', null, null]
  ]
  for (const [code, status, gwCode] of rows) {
    const err = parserRefusal(code)
    t.equal(err?.statusCode ?? null, status, `${String(code)}: ${String(status)}`)
    t.equal(err?.code ?? null, gwCode, `${String(code)}: ${String(gwCode)}`)
  }
})

t.test('the raw answer is a complete response that closes the connection', async (t) => {
  const bytes = rawHttpAnswer(methodNotAllowed('CONNECT', 'GET, POST'), 'req-1').toString('utf8')
  const [head = '', body = ''] = bytes.split('\r\n\r\n')
  const lines = head.split('\r\n')
  t.equal(lines[0], 'HTTP/1.1 405 Method Not Allowed')
  t.ok(lines.includes('allow: GET, POST'))
  t.ok(lines.includes('x-request-id: req-1'))
  t.ok(lines.includes('connection: close'))
  t.ok(lines.includes(`content-length: ${Buffer.byteLength(body)}`))
  t.same(JSON.parse(body), { statusCode: 405, code: 'METHOD_NOT_ALLOWED', error: 'Method Not Allowed', message: 'CONNECT is not served by this gateway' })
})
