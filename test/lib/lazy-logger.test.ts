// The proxy route's request logger: no child is made until a line at or above its level is
// logged; then exactly one, with the request's bindings and options, and every later call goes to it.
import { test } from 'tap'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { LazyChildLogger, type RequestLogger } from '../../src/lib/lazy-logger.js'

function recordingLogger (): { logger: RequestLogger, lines: Array<Record<string, unknown>>, children: () => number } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk: Buffer, _e, done) { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>); done() } })
  const logger = pino({ level: 'info' }, sink) as unknown as RequestLogger
  let made = 0
  const child = logger.child
  // pino's children inherit from their parent: count only the children of this logger itself.
  logger.child = function (this: RequestLogger, b, o) { if (this === logger) made++; return child.call(this, b, o) }
  return { logger, lines, children: () => made }
}

const flush = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

test('below its level nothing is made or written; at it, one child with the bindings and options', async (t) => {
  const { logger, lines, children } = recordingLogger()
  const lazy = new LazyChildLogger(logger, { reqId: 'r-1' }, { level: 'error' })
  lazy.trace('t'); lazy.debug('d'); lazy.info({ a: 1 }, 'i'); lazy.warn(new Error('w'), 'warned')
  await flush()
  t.equal(children(), 0, 'no child for dropped lines')
  t.same(lines, [], 'nothing written')
  t.equal(lazy.level, 'error')
  t.equal(lazy.isLevelEnabled('warn'), false)
  t.equal(lazy.isLevelEnabled('error'), true)
  lazy.error({ code: 'X' }, 'failed')
  lazy.fatal('worse')
  lazy.info('still dropped by the child\'s own level')
  await flush()
  t.equal(children(), 1, 'one child, made once')
  t.match(lines, [{ level: 50, reqId: 'r-1', code: 'X', msg: 'failed' }, { level: 60, reqId: 'r-1', msg: 'worse' }])
  t.equal(lines.length, 2)
})

test('child(), a level set later, and silent', async (t) => {
  const { logger, lines, children } = recordingLogger()
  const lazy = new LazyChildLogger(logger, { reqId: 'r-2' }, { level: 'error' })
  const grandchild = lazy.child({ part: 'x' })
  grandchild.error('from the grandchild')
  lazy.level = 'info' // a level set on the request's logger goes to the real child
  lazy.info('now written')
  lazy.silent()
  await flush()
  t.equal(children(), 1)
  t.match(lines, [{ reqId: 'r-2', part: 'x', msg: 'from the grandchild' }, { reqId: 'r-2', level: 30, msg: 'now written' }])
  const silent = new LazyChildLogger(logger, { reqId: 'r-3' }, { level: 'silent' })
  silent.fatal('never')
  t.equal(silent.isLevelEnabled('fatal'), false)
  t.equal(children(), 1, 'a silent logger never makes a child')
})
