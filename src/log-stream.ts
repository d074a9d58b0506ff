/**
 * Where and how log lines are written, for the app's logger and the server's own (before the app
 * exists) alike: ISO 8601 times in both formats, LOG_FORMAT=pretty through src/lib/pretty-log.ts,
 * and JSON lines through an asynchronous buffered destination (docs/performance.md).
 */
import { Writable } from 'node:stream'
import { pino, stdTimeFunctions } from 'pino'
import { formatPretty } from './lib/pretty-log.js'

/** pino's `timestamp` option: `"time":"2026-01-02T03:04:05.678Z"`, which operators grep by. */
export const LOG_TIMESTAMP = stdTimeFunctions.isoTime

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
  /** Stops the timer; pino still writes the rest synchronously when the process exits. */
  stopTimer: () => void
}

/**
 * JSON lines to `dest` (a file descriptor or path) without one write(2) per line: pino's
 * synchronous default cost ~10% of the gateway's CPU under load (docs/performance.md). Lines are
 * gathered up to LOG_BUFFER_BYTES, and flushed at least every LOG_FLUSH_INTERVAL_MS, and
 * synchronously when the process exits (pino registers that for every async destination it makes:
 * process.exit, a signal handled by src/server.ts, an uncaught error; a SIGKILL loses the buffer).
 */
export function bufferedLog (dest: number | string): BufferedLog {
  const boom = pino.destination({ dest, sync: false, minLength: LOG_BUFFER_BYTES })
  // sonic-boom says how much it holds only through this field; without it, flush every tick.
  const held = boom as unknown as { _len?: number, _writing?: boolean }
  const timer = setInterval(() => {
    if (held._writing !== true && (held._len ?? 1) > 0) boom.flush()
  }, LOG_FLUSH_INTERVAL_MS)
  timer.unref()
  return {
    // pino takes a SonicBoom as its stream; the Node stream type it only resembles.
    stream: boom as unknown as NodeJS.WritableStream,
    stopTimer: () => { clearInterval(timer) }
  }
}
