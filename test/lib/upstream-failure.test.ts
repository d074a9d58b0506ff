// Upstream failures, table-driven: the error codes undici, reply-from and node:http report, the
// kind each is counted as, and the answer the gateway gives for it.
import { test } from 'tap'
import { classifyUpstreamError, upstreamFailureAnswer, type ClassifiedFailure } from '../../src/lib/upstream-failure.js'

const err = (code: string | undefined, cause?: string): Error => Object.assign(new Error('x'), code === undefined ? {} : { code }, cause === undefined ? {} : { cause: { code: cause } })

test('classifyUpstreamError: each code to its kind, the cause\'s code first', async (t) => {
  const rows: Array<[Error, ClassifiedFailure]> = [
    [err('UND_ERR_HEADERS_TIMEOUT'), 'timeout'], [err('UND_ERR_BODY_TIMEOUT'), 'timeout'], [err('UND_ERR_CONNECT_TIMEOUT'), 'timeout'],
    [err('FST_REPLY_FROM_GATEWAY_TIMEOUT'), 'timeout'], [err('FST_REPLY_FROM_TIMEOUT'), 'timeout'],
    [err('PORTCULLIS_UPSTREAM_BODY_TIMEOUT'), 'timeout'],
    [err('ECONNREFUSED'), 'refused'], [err('ECONNRESET'), 'reset'], [err('UND_ERR_SOCKET'), 'reset'], [err('EPIPE'), 'reset'],
    [err('ENOTFOUND'), 'dns'], [err('EAI_AGAIN'), 'dns'],
    [err('ERR_TLS_CERT_ALTNAME_INVALID'), 'tls'], [err('DEPTH_ZERO_SELF_SIGNED_CERT'), 'tls'], [err('CERT_HAS_EXPIRED'), 'tls'],
    [err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'tls'], [err('SELF_SIGNED_CERT_IN_CHAIN'), 'tls'], [err('UNABLE_TO_GET_ISSUER_CERT_LOCALLY'), 'tls'],
    [err('HPE_INVALID_CONSTANT'), 'protocol'], [err(undefined), 'protocol'],
    [err('FST_REPLY_FROM_INTERNAL_SERVER_ERROR', 'ECONNREFUSED'), 'refused']
  ]
  for (const [e, kind] of rows) t.equal(classifyUpstreamError(e), kind, JSON.stringify({ code: (e as { code?: string }).code, cause: (e as { cause?: unknown }).cause }))
})

test('upstreamFailureAnswer: 504 naming the timeout, else 502 saying what the upstream did', async (t) => {
  t.match(upstreamFailureAnswer('timeout', 1500), { statusCode: 504, code: 'UPSTREAM_TIMEOUT' })
  t.match(upstreamFailureAnswer('timeout', 1500).message, /1500/)
  const texts: Record<Exclude<ClassifiedFailure, 'timeout'>, RegExp> = {
    refused: /refused the connection/,
    reset: /reset the connection/,
    dns: /could not be resolved/,
    tls: /TLS certificate could not be verified/,
    protocol: /not valid HTTP/
  }
  for (const [kind, text] of Object.entries(texts)) {
    const answer = upstreamFailureAnswer(kind as ClassifiedFailure, 1500)
    t.match(answer, { statusCode: 502, code: 'UPSTREAM_ERROR' }, kind)
    t.match(answer.message, text, kind)
  }
})
