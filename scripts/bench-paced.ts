/**
 * The paced load of `npm run bench`: requests at a fixed rate, evenly spread in time, for the p99
 * comparison at half the bare proxy's maximum rate (docs/performance.md).
 *
 * Why not autocannon's `overallRate`: it gives each connection a quota per second and sends that
 * quota back to back from the start of each second, then idles (autocannon lib/httpClient.js).
 * At "half the maximum rate" the first half of every second is then a full-load burst over every
 * connection, and its p99 is the p99 of a saturated proxy. Here the requests of each millisecond
 * leave in that millisecond.
 *
 * Open loop: request i is due at start + i / rate. Its latency runs from that due time (not from
 * when a connection was free to take it) to the last byte of its answer, so a proxy that falls
 * behind is charged for the wait of every request queued behind it (no coordinated omission).
 * Raw keep-alive sockets, one request at a time on each; answers must carry Content-Length.
 * Only ever connects to 127.0.0.1.
 */
import { connect, type Socket } from 'node:net'

export interface PacedOptions {
  port: number
  /** Path and query of every request. */
  path: string
  headers: Record<string, string>
  /** The body every answer must have (a different one counts as a mismatch). */
  expectBody: string
  /** Requests per second. */
  rate: number
  /** Seconds measured. */
  seconds: number
  /**
   * Seconds of the same load right before the measured ones, on the same connections and without
   * a pause: answered and checked like the others, left out of the latencies (default 0).
   */
  warmupSeconds?: number
  /** Keep-alive connections at most (requests due while all are busy wait for one). */
  connections: number
  /** How long the answers still out at the end may take (ms). */
  drainMs?: number
}

export interface PacedResult {
  /** Requests due and sent (the counts up to `timeouts` include the warm-up's). */
  sent: number
  /** Answers read to their last byte. */
  completed: number
  non2xx: number
  /** 2xx answers whose body was not `expectBody`. */
  mismatches: number
  /** Connections that failed or closed with a request out, and answers that could not be read. */
  errors: number
  /** Requests still unanswered after the drain. */
  timeouts: number
  /** Answers to the requests due after the warm-up: the ones `latency` is taken over. */
  measured: number
  /** From each measured request's due time to the last byte of its answer (ms). */
  latency: { p50: number, p90: number, p99: number, max: number }
  /** Seconds from the first measured due time to the last answer. */
  duration: number
}

const HEAD_END = Buffer.from('\r\n\r\n')

/** The value at quantile q (0–1) of ascending `sorted`, by the nearest-rank method; 0 when empty. */
export function quantile (sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0
  const rank = Math.ceil(q * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number
}

/**
 * One answer read from `data` when it is complete: its status, its body and how many bytes it
 * took; null while more bytes are needed. Throws on an answer without Content-Length.
 */
export function readAnswer (data: Buffer): { status: number, body: Buffer, length: number } | null {
  const headEnd = data.indexOf(HEAD_END)
  if (headEnd === -1) return null
  const head = data.toString('latin1', 0, headEnd)
  const status = Number(head.slice(9, 12))
  const m = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head)
  if (!head.startsWith('HTTP/1.') || !Number.isInteger(status)) throw new Error(`not an HTTP/1.x answer: ${JSON.stringify(head.slice(0, 40))}`)
  if (m === null) throw new Error(`an answer without Content-Length (status ${status})`)
  const length = headEnd + HEAD_END.length + Number(m[1])
  if (data.length < length) return null
  return { status, body: data.subarray(headEnd + HEAD_END.length, length), length }
}

interface Conn { socket: Socket, data: Buffer, dueAt: number, busy: boolean }

/** Runs the paced load and resolves with its figures once every answer is in (or the drain ran out). */
export async function pacedLoad (o: PacedOptions): Promise<PacedResult> {
  const headerLines = Object.entries(o.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
  const request = Buffer.from(`GET ${o.path} HTTP/1.1\r\nhost: 127.0.0.1:${o.port}\r\n${headerLines}\r\n`, 'latin1')
  const expected = Buffer.from(o.expectBody)
  const warmup = Math.round(o.rate * (o.warmupSeconds ?? 0))
  const total = warmup + Math.max(1, Math.round(o.rate * o.seconds))
  const interval = 1000 / o.rate
  const latencies = new Float64Array(total - warmup)
  const r = { sent: 0, completed: 0, non2xx: 0, mismatches: 0, errors: 0, measured: 0 }
  const free: Conn[] = []
  const waiting: number[] = [] // due times of requests waiting for a free connection
  let start = 0
  // The due time of the first measured request: answers to earlier ones are the warm-up's.
  let measuredFrom = 0
  let lastAnswer = 0
  let finish: (() => void) | null = null

  const done = (): boolean => r.sent === total && r.completed + r.errors === total
  const send = (c: Conn, dueAt: number): void => {
    c.busy = true
    c.dueAt = dueAt
    c.socket.write(request)
  }
  const release = (c: Conn): void => {
    c.busy = false
    const next = waiting.shift()
    if (next !== undefined) send(c, next)
    else free.push(c)
    if (done()) finish?.()
  }
  const live = new Set<Conn>()
  let stopped = false
  // A connection that failed: its request (if any) is an error; a new connection takes its place.
  const lost = (c: Conn): void => {
    if (!live.delete(c)) return
    c.socket.destroy()
    const i = free.indexOf(c)
    if (i !== -1) free.splice(i, 1)
    if (c.busy) r.errors++
    if (!stopped) release(open())
    else if (done()) finish?.()
  }
  const open = (): Conn => {
    const c: Conn = { socket: connect({ host: '127.0.0.1', port: o.port, noDelay: true }), data: Buffer.alloc(0), dueAt: 0, busy: false }
    live.add(c)
    c.socket.on('data', (chunk: Buffer) => {
      c.data = c.data.length === 0 ? chunk : Buffer.concat([c.data, chunk])
      let answer
      try {
        answer = readAnswer(c.data)
      } catch {
        answer = undefined
      }
      if (answer === null) return
      if (answer === undefined || !c.busy || answer.length !== c.data.length) {
        lost(c) // unreadable, unasked for, or more bytes than one answer
        return
      }
      const now = performance.now()
      r.completed++
      if (c.dueAt >= measuredFrom) latencies[r.measured++] = now - c.dueAt
      lastAnswer = now
      if (answer.status < 200 || answer.status > 299) r.non2xx++
      else if (!answer.body.equals(expected)) r.mismatches++
      c.data = Buffer.alloc(0)
      release(c)
    })
    c.socket.on('error', () => {})
    c.socket.on('close', () => { lost(c) })
    return c
  }

  const first = Array.from({ length: o.connections }, open)
  await Promise.all(first.map(async (c) => await new Promise<void>((resolve, reject) => {
    c.socket.once('connect', resolve)
    c.socket.once('error', reject)
  })))
  free.push(...first)

  start = performance.now()
  measuredFrom = start + warmup * interval
  const tick = (): void => {
    const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1)
    while (r.sent < due) {
      const dueAt = start + r.sent * interval
      r.sent++
      const c = free.pop()
      if (c !== undefined) send(c, dueAt)
      else waiting.push(dueAt)
    }
    if (r.sent === total) clearInterval(timer)
  }
  const timer = setInterval(tick, 1)
  tick()
  const all = new Promise<void>((resolve) => { finish = resolve })
  await new Promise((resolve) => setTimeout(resolve, (o.warmupSeconds ?? 0) * 1000 + o.seconds * 1000))
  const drain = setTimeout(() => finish?.(), o.drainMs ?? 10_000)
  if (!done()) await all
  clearTimeout(drain)
  clearInterval(timer)
  stopped = true
  for (const c of live) c.socket.destroy()

  const answered = latencies.subarray(0, r.measured).sort()
  return {
    ...r,
    timeouts: total - r.completed - r.errors,
    latency: {
      p50: quantile(answered, 0.5),
      p90: quantile(answered, 0.9),
      p99: quantile(answered, 0.99),
      max: answered.length === 0 ? 0 : answered[answered.length - 1] as number
    },
    duration: r.measured === 0 ? 0 : (lastAnswer - measuredFrom) / 1000
  }
}
