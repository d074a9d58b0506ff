/**
 * LOG_FORMAT=pretty: one pino JSON line turned into one line a person reads in a terminal,
 * `2026-01-02T03:04:05.678Z INFO  request method=GET status=200 …`. Our own few lines rather than
 * pino-pretty: no worker-thread transport, no extra dependency tree, and the record has already
 * been redacted by pino when it gets here.
 */

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
// Always the same in one process: noise on every line of a terminal.
const OMIT = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'err'])

/** A value as `key=value`: bare when it is a simple word, else JSON (quotes, objects, spaces). */
function field (key: string, value: unknown): string {
  const text = typeof value === 'string' && /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)
  return `${key}=${text}`
}

/** Formats one JSON log line; a line that is not a JSON object is returned unchanged. */
export function formatPretty (line: string): string {
  let rec: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(line)
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return line
    rec = parsed as Record<string, unknown>
  } catch {
    return line
  }
  const time = typeof rec.time === 'string' ? rec.time : typeof rec.time === 'number' ? new Date(rec.time).toISOString() : ''
  const level = (LEVELS[Number(rec.level)] ?? String(rec.level ?? '')).padEnd(5)
  const parts = [time, level, typeof rec.msg === 'string' ? rec.msg : '']
  for (const [k, v] of Object.entries(rec)) if (!OMIT.has(k) && v !== undefined) parts.push(field(k, v))
  let out = parts.filter((p) => p !== '').join(' ')
  const err = rec.err as { type?: string, message?: string, code?: string, stack?: string } | undefined
  if (err !== undefined && err !== null && typeof err === 'object') {
    out += ` err=${JSON.stringify(`${err.type ?? 'Error'}: ${err.message ?? ''}`)}${err.code === undefined ? '' : ` err.code=${err.code}`}`
    // The stack on its own indented lines, so the first line stays one record.
    if (typeof err.stack === 'string' && err.stack.includes('\n')) out += '\n' + err.stack.split('\n').slice(1).map((l) => `    ${l.trim()}`).join('\n')
  }
  return out
}
