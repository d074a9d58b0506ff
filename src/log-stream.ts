/**
 * Where and how log lines are written, for the app's logger and the server's own (before the app
 * exists) alike: ISO 8601 times in both formats, LOG_FORMAT=pretty through src/lib/pretty-log.ts,
 * and JSON lines through an asynchronous buffered destination (docs/performance.md).
 */
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { formatPretty } from './lib/pretty-log.js'
import { isoTimeField } from './lib/iso-time.js'

/**
 * pino's `timestamp` option: `"time":"2026-01-02T03:04:05.678Z"`, which operators grep by. The
 * same text as pino's `stdTimeFunctions.isoTime`, formatted once per second (src/lib/iso-time.ts).
 */
export const LOG_TIMESTAMP = (): string => isoTimeField()

/** Bytes of log lines gathered before one write(2): about a dozen request lines under load. */
export const LOG_BUFFER_BYTES = 4096
/** The longest a line waits in the buffer when traffic is too low to fill it. */
export const LOG_FLUSH_INTERVAL_MS = 100

/** A stream that writes each JSON line it receives to `dest` as one readable line. */
export function prettyStream (dest: NodeJS.WritableStream): Writable {
  let partial = ''
  return new Writable({
    write (chunk: Buffer | string, _enc, done) {
      const lines = (partial + chunk.toString()).split('\n')
      partial = lines.pop() ?? ''
      if (lines.length > 0) dest.write(lines.map((l) => formatPretty(l) + '\n').join(''))
      done()
    }
  })
}

/** The stream a logger writes to: `dest` (default stdout) as is for JSON, wrapped for pretty. */
export function logStream (format: 'json' | 'pretty', dest?: NodeJS.WritableStream): NodeJS.WritableStream | undefined {
  if (format === 'pretty') return prettyStream(dest ?? process.stdout)
  return dest
}

/** A buffered log destination and how to stop its flush timer (the buffer is still flushed at exit). */
export interface BufferedLog {
  stream: NodeJS.WritableStream
  /** Stops the timer; the rest is still written when the process exits. */
  stopTimer: () => void
}

interface Boom { flush: () => void, flushSync: () => void, _len?: number }

/** Every buffered destination of this process, written out synchronously on exit. */
const buffers = new Set<Boom>()
let exitHook = false
function flushAllSync (): void {
  for (const b of buffers) {
    try {
      b.flushSync()
    } catch {} // a destination that never opened, or a closed stdout: nothing to save
  }
}

/**
 * JSON lines to `dest` (a file descriptor or path) with one write(2) per LOG_BUFFER_BYTES instead
 * of one per line: the lines are gathered in a buffer and written synchronously once it holds
 * that much, at least every LOG_FLUSH_INTERVAL_MS, and on process exit (process.exit, a signal
 * handled by src/server.ts, an uncaught error; a SIGKILL loses the buffer). Synchronous on
 * purpose: measured on the bench's single proxy core, an asynchronous write hands every buffer to
 * a libuv thread that competes with the event loop for the same core (5.4–6.0 µs per line against
 * 3.6–4.1 µs; pino's unbuffered default: 5.2 µs), docs/performance.md.
 */
export function bufferedLog (dest: number | string): BufferedLog {
  // No buffer of sonic-boom's own (minLength 0): it writes each gathered buffer at once.
  const boom = pino.destination({ dest, sync: true, minLength: 0 })
  // Lines are gathered in one string in front of sonic-boom, which takes them a buffer at a time:
  // its own buffering measures the byte length of its pending buffer on every call (about 1.3 µs a
  // request line at 4 KB), ours only appends (docs/performance.md). Every line still goes through
  // this one stream, in order; flush, flushSync and end write the gathered lines first.
  const boomWrite = boom.write.bind(boom)
  const boomFlush = boom.flush.bind(boom)
  const boomFlushSync = boom.flushSync.bind(boom)
  const boomEnd = boom.end.bind(boom)
  let gathered = ''
  const release = (): void => {
    if (gathered === '') return
    const lines = gathered
    gathered = ''
    boomWrite(lines)
  }
  const batch = boom as unknown as Record<'write' | 'flush' | 'flushSync' | 'end', (...args: never[]) => unknown>
  batch.write = (line: string): boolean => {
    gathered += line
    if (gathered.length >= LOG_BUFFER_BYTES) release()
    return true
  }
  batch.flush = (cb?: (err?: Error) => void) => { release(); boomFlush(cb) }
  batch.flushSync = () => { release(); boomFlushSync() }
  batch.end = () => { release(); boomEnd() }
  // sonic-boom says how much it holds only through this field; without it, flush every tick.
  const held = boom as unknown as Boom
  buffers.add(held)
  if (!exitHook) {
    exitHook = true
    process.on('exit', flushAllSync)
  }
  const timer = setInterval(() => {
    if (gathered !== '' || (held._len ?? 1) > 0) boom.flush()
  }, LOG_FLUSH_INTERVAL_MS)
  timer.unref()
  return {
    // pino takes a SonicBoom as its stream; the Node stream type it only resembles.
    stream: boom as unknown as NodeJS.WritableStream,
    stopTimer: () => { clearInterval(timer) }
  }
}

const S = pino.symbols
/** The pino internals a direct line reads, by their symbols. */
type PinoInternals = Partial<Pick<Logger, 'isLevelEnabled' | 'levels' | 'msgPrefix'>> & Record<symbol, unknown>

/**
 * A writer of `logger.info(fields, msg)`'s exact line that skips pino's generic serialiser: the
 * caller's `serialize` writes the fields (`,"a":1,…`), and the line gets pino's own level, time,
 * bindings and end, and goes to pino's own destination (buffered, pretty, or a test's stream).
 * Null when the logger has an option under which only pino can write the line: a mixin, a log
 * formatter, hooks, a nested key, a message prefix, a serializer or redaction on one of `keys`, or a
 * destination that wants each line's metadata (pino.multistream); then log through pino.
 */
export function directInfoWriter<T> (logger: object, msg: string, keys: readonly string[], serialize: (fields: T) => string): ((fields: T) => void) | null {
  const l = logger as PinoInternals
  const stream = l[S.streamSym] as ({ write?: unknown } & Record<symbol, unknown>) | undefined
  const formatters = l[S.formattersSym] as { log?: unknown } | undefined
  const hooks = l[S.hooksSym] as { logMethod?: unknown, streamWrite?: unknown } | undefined
  const serializers = l[S.serializersSym] as Record<string, unknown> | undefined
  const stringifiers = l[S.stringifiersSym] as Record<string | symbol, unknown> | undefined
  const messageKey = l[S.messageKeySym]
  const head = (l[S.lsCacheSym] as Record<number, string> | undefined)?.[l.levels?.values.info ?? -1]
  // Not a pino logger (a custom Fastify loggerInstance): nothing to write past.
  if (typeof stream?.write !== 'function' || typeof l.isLevelEnabled !== 'function' || formatters === undefined || hooks === undefined ||
    serializers === undefined || stringifiers === undefined || typeof messageKey !== 'string' || typeof head !== 'string') return null
  const custom = l[S.mixinSym] !== undefined || formatters.log !== undefined || hooks.logMethod !== undefined ||
    hooks.streamWrite !== undefined || l[S.nestedKeySym] != null || l.msgPrefix !== undefined ||
    stream[S.needsMetadataGsym] === true || stringifiers[S.wildcardFirstSym] !== undefined ||
    serializers[messageKey] !== undefined || stringifiers[messageKey] !== undefined ||
    keys.some((k) => serializers[k] !== undefined || stringifiers[k] !== undefined || k === l[S.errorKeySym])
  if (custom) return null
  const time = l[S.timeSym] as () => string
  const tail = ',"' + messageKey + '":' + JSON.stringify(msg) + (l[S.endSym] as string)
  const dest = stream as { write: (line: string) => unknown }
  const log = logger as Logger
  return (fields) => {
    if (!log.isLevelEnabled('info')) return
    // Bindings are read per line: setBindings may change them.
    dest.write(head + time() + (l[S.chindingsSym] as string) + serialize(fields) + tail)
  }
}
