// directInfoWriter: a line written past pino's serialiser is the line pino would have written, to
// pino's own destination, at pino's level; a logger with an option only pino honours gets null.
import t from 'tap'
import { Writable } from 'node:stream'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino, type LoggerOptions } from 'pino'
import { LOG_REDACT } from '../src/app.js'
import { LOG_TIMESTAMP, bufferedLog, directInfoWriter, logStream } from '../src/log-stream.js'
import { REQUEST_LINE_KEYS, requestLineProps, type RequestLine } from '../src/lib/request-line.js'
import { formatPretty } from '../src/lib/pretty-log.js'

class Capture extends Writable {
  text = ''
  override _write (chunk: Buffer, _enc: BufferEncoding, done: () => void): void { this.text += chunk.toString('utf8'); done() }
}

const FIXED_TIME = (): string => ',"time":"2026-01-02T03:04:05.678Z"'
/** The app's logger options (src/app.ts), with a fixed time so two lines can be compared byte for byte. */
const appOptions = (over: LoggerOptions = {}): LoggerOptions => ({ level: 'info', redact: { paths: LOG_REDACT, censor: '[redacted]' }, timestamp: FIXED_TIME, ...over })

const fields = (over: Partial<RequestLine> = {}): RequestLine => ({
  reqId: 'r-1', method: 'GET', path: '/api/x', route: '/api', status: 200, code: undefined, remoteAddress: '127.0.0.1', listener: undefined, ms: 1.5, consumer: 'tok_a', rateLimit: 'allowed', upstreamFailure: undefined, ...over
})

/** What pino writes for `f`, and what the direct writer writes, to the same kind of stream. */
function both (opts: LoggerOptions, f: RequestLine): { viaPino: string, direct: string } {
  const a = new Capture()
  const b = new Capture()
  pino(opts, a).info(f, 'request')
  const write = directInfoWriter(pino(opts, b), 'request', REQUEST_LINE_KEYS, requestLineProps)
  if (write === null) throw new Error('no direct writer')
  write(f)
  return { viaPino: a.text, direct: b.text }
}

t.test('the same bytes as pino, for the hostile strings a client controls', async (t) => {
  const hostile = ['a"b', 'a\\b', '\n\r\t', '\u0000\u001f', '\u2028', 'é日😀', '","level":60,"msg":"x', '']
  const cases = [fields(), fields({ code: 'CIRCUIT_OPEN', status: 503, consumer: undefined, rateLimit: undefined, path: null, route: null }),
    fields({ listener: 'management', upstreamFailure: 'reset', ms: Number.NaN, remoteAddress: undefined, path: undefined })]
  for (const s of hostile) cases.push(fields({ reqId: s, method: s, path: s, route: s, code: s, remoteAddress: s, consumer: s, upstreamFailure: s }))
  for (const [i, f] of cases.entries()) {
    const { viaPino, direct } = both(appOptions(), f)
    t.equal(direct, viaPino, `case ${i}`)
  }
  // A lone surrogate: escaped, as JSON.stringify does (and pino on Node 25+, or for strings over 100
  // characters); pino's short-string path on older Node writes it raw, and UTF-8 turns it into U+FFFD.
  for (const s of ['\ud800', 'x\ude00', '\ude00\ud83d']) {
    const { viaPino, direct } = both(appOptions(), fields({ path: s, reqId: s }))
    const rec = JSON.parse(direct) as Record<string, unknown>
    t.same([rec.path, rec.reqId], [s, s], 'a lone surrogate reads back as itself')
    t.same({ ...rec, path: 0, reqId: 0 }, { ...JSON.parse(viaPino) as Record<string, unknown>, path: 0, reqId: 0 }, 'otherwise the same line')
  }
  const { viaPino, direct } = both(appOptions({ base: { pid: 7, hostname: 'h"ost' } }), fields())
  t.equal(direct, viaPino, 'the base bindings, whatever they are')
  t.match(direct, /^\{"level":30,"time":"2026-01-02T03:04:05.678Z","pid":7,"hostname":"h\\"ost","reqId":"r-1",.*,"msg":"request"\}\n$/)
})

t.test('the logger\'s level, bindings and time are honoured', async (t) => {
  const out = new Capture()
  const log = pino({ ...appOptions(), timestamp: LOG_TIMESTAMP }, out)
  const write = directInfoWriter(log, 'request', REQUEST_LINE_KEYS, requestLineProps)
  if (write === null) throw new Error('no direct writer')
  log.level = 'warn'
  write(fields())
  t.equal(out.text, '', 'nothing at warn')
  log.level = 'info'
  log.setBindings({ worker: 2 })
  const before = new Date().toISOString()
  write(fields())
  const rec = JSON.parse(out.text) as Record<string, unknown>
  t.equal(rec.worker, 2, 'bindings set after the writer was made')
  t.ok(typeof rec.time === 'string' && rec.time >= before && rec.time <= new Date().toISOString(), 'the time is now, in ISO 8601')
  const child = log.child({ reqId: 'from-child' })
  out.text = ''
  directInfoWriter(child, 'request', REQUEST_LINE_KEYS, requestLineProps)?.(fields())
  child.info(fields(), 'request')
  const [direct, viaPino] = out.text.replace(/"time":"[^"]*"/g, '').split('\n')
  t.equal(direct, viaPino, 'a child logger: the same line as pino\'s, its bindings included')
})

t.test('pretty and buffered destinations get the line', async (t) => {
  const pretty = new Capture()
  const write = directInfoWriter(pino(appOptions(), logStream('pretty', pretty)), 'request', REQUEST_LINE_KEYS, requestLineProps)
  write?.(fields({ path: 'a b"c' }))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(pretty.text, formatPretty(both(appOptions(), fields({ path: 'a b"c' })).viaPino.trimEnd()) + '\n', 'LOG_FORMAT=pretty formats it')
  const file = join(mkdtempSync(join(tmpdir(), 'portcullis-log-')), 'out.log')
  const buffered = bufferedLog(file)
  t.teardown(buffered.stopTimer)
  const bw = directInfoWriter(pino(appOptions(), buffered.stream), 'request', REQUEST_LINE_KEYS, requestLineProps)
  bw?.(fields())
  ;(buffered.stream as unknown as { flushSync: () => void }).flushSync()
  t.equal(readFileSync(file, 'utf8'), both(appOptions(), fields()).viaPino, 'the buffered destination, flushed')
})

t.test('a logger with an option only pino honours gets no direct writer', async (t) => {
  const sink = new Capture()
  const none = (name: string, logger: object, keys: readonly string[] = REQUEST_LINE_KEYS): void => {
    t.equal(directInfoWriter(logger, 'request', keys, requestLineProps), null, name)
  }
  t.not(directInfoWriter(pino(appOptions(), sink), 'request', REQUEST_LINE_KEYS, requestLineProps), null, 'the app\'s options: direct')
  none('a mixin', pino(appOptions({ mixin: () => ({ a: 1 }) }), sink))
  none('a log formatter', pino(appOptions({ formatters: { log: (o) => o } }), sink))
  none('a logMethod hook', pino(appOptions({ hooks: { logMethod (args, method) { method.apply(this, args) } } }), sink))
  none('a streamWrite hook', pino(appOptions({ hooks: { streamWrite: (s) => s } }), sink))
  none('a nested key', pino(appOptions({ nestedKey: 'payload' }), sink))
  none('a message prefix', pino(appOptions(), sink).child({}, { msgPrefix: '[x] ' }))
  none('redaction of a field', pino(appOptions({ redact: ['path'] }), sink))
  none('a wildcard redaction', pino(appOptions({ redact: ['*.authorization'] }), sink))
  none('a serializer of a field', pino(appOptions({ serializers: { status: (s: number) => s } }), sink))
  none('a serializer of the message', pino(appOptions({ serializers: { msg: (s: string) => s } }), sink))
  none('the error key among the fields', pino(appOptions(), sink), ['err'])
  none('a multistream', pino(appOptions(), pino.multistream([{ stream: sink }])))
  none('not a pino logger', { info () {}, isLevelEnabled: () => true })
})
