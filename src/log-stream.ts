/**
 * Where and how log lines are written, for the app's logger and the server's own (before the app
 * exists) alike: ISO 8601 times in both formats, LOG_FORMAT=pretty through src/lib/pretty-log.ts.
 */
import { Writable } from 'node:stream'
import { stdTimeFunctions } from 'pino'
import { formatPretty } from './lib/pretty-log.js'

/** pino's `timestamp` option: `"time":"2026-01-02T03:04:05.678Z"`, which operators grep by. */
export const LOG_TIMESTAMP = stdTimeFunctions.isoTime

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
