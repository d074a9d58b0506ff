/**
 * A private `redis-server` from PATH on a loopback port, without persistence: what `npm run demo`,
 * `npm run bench`, `npm run openapi` and the test harness start when they need a Redis of their own.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

/** Asks the kernel for a free TCP port on loopback. */
export async function freePort (): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address() as { port: number }
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}

/** Null when `url` answers PING within `timeoutMs`, else the reason it did not. */
export async function pingProblem (url: string, timeoutMs: number): Promise<string | null> {
  let c: Redis
  try {
    c = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
  } catch (err) {
    return (err as Error).message
  }
  let lastError: string | null = null // "Connection is closed" alone would hide ECONNREFUSED
  c.on('error', (err: Error) => { lastError = err.message })
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs) })
  const attempt = (async (): Promise<string | null> => {
    try {
      await c.connect()
      const pong = await c.ping()
      return pong === 'PONG' ? null : `PING answered ${String(pong)}`
    } catch (err) {
      return lastError ?? (err as Error).message
    }
  })()
  try {
    return await Promise.race([attempt, timeout])
  } finally {
    clearTimeout(timer)
    c.disconnect()
  }
}

export interface SpawnOptions {
  /** A port to reuse (a restart); default a free one. */
  port?: number
  /** The working folder to reuse; default a new temp folder, removed by `close`. */
  dir?: string
  /** Own process group, so a terminal's Ctrl-C reaches only the parent (the demo stops Redis last). */
  detached?: boolean
  extraArgs?: string[]
}

/** A running private redis-server. */
export interface PrivateRedis {
  port: number
  url: string
  dir: string
  proc: ChildProcess
  /** Stops it: SIGKILL (a real crash, for fault tests) or SIGTERM with SIGKILL after 3 s. */
  stop: (signal?: 'SIGKILL' | 'SIGTERM') => Promise<void>
  /** Stops it and removes its folder (when this module made the folder). */
  close: () => Promise<void>
  /** Synchronous last resort on process exit. */
  killNow: () => void
}

/** Starts redis-server and resolves once it answers PING; a clear error when it is not on PATH. */
export async function spawnPrivateRedis (opts: SpawnOptions = {}): Promise<PrivateRedis> {
  const port = opts.port ?? await freePort()
  const ownDir = opts.dir === undefined
  const dir = opts.dir ?? await mkdtemp(join(tmpdir(), 'portcullis-redis-'))
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning', ...(opts.extraArgs ?? [])],
  { stdio: ['ignore', 'ignore', 'inherit'], detached: opts.detached === true })
  const stop = async (signal: 'SIGKILL' | 'SIGTERM' = 'SIGTERM'): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return
    const gone = once(proc, 'exit')
    proc.kill(signal)
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000)
    await gone
    clearTimeout(timer)
  }
  const close = async (): Promise<void> => {
    await stop()
    if (ownDir) await rm(dir, { recursive: true, force: true })
  }
  const spawnFailed = new Promise<never>((_resolve, reject) => {
    proc.once('error', (err) => { reject(new Error(`cannot start redis-server from PATH (${err.message}); install Redis or set REDIS_URL`)) })
    proc.once('exit', (code, signal) => { reject(new Error(`redis-server exited at start (${signal ?? `code ${String(code)}`})`)) })
  })
  try {
    await Promise.race([waitForPing(port, 10_000), spawnFailed])
  } catch (err) {
    await close()
    throw err
  }
  spawnFailed.catch(() => {}) // a later exit is the owner's business (fault tests cause it on purpose)
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    proc,
    stop,
    close,
    killNow: () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') }
  }
}

async function waitForPing (port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (await pingProblem(`redis://127.0.0.1:${port}`, 500) !== null) {
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms`)
    await sleep(50)
  }
}

/** The Redis a script (or the test harness) uses: where it is, and how to let it go. */
export interface ScriptRedis {
  url: string
  /** The private redis-server's pid, or null when `url` was given. */
  pid: number | null
  /** Stops a private redis-server and removes its folder; nothing for a given URL. */
  close: () => Promise<void>
  /** Synchronous last resort on exit: SIGKILL a private redis-server, leave its folder. */
  killNow: () => void
}

/** `url` when given (REDIS_URL, `--redis-url`), else a private redis-server that answers PING before this resolves. */
export async function redisForScript (opts: { url?: string | undefined } & Pick<SpawnOptions, 'detached'> = {}): Promise<ScriptRedis> {
  if (opts.url !== undefined && opts.url !== '') return { url: opts.url, pid: null, close: async () => {}, killNow: () => {} }
  const server = await spawnPrivateRedis(opts.detached === true ? { detached: true } : {})
  return { url: server.url, pid: server.proc.pid ?? null, close: server.close, killNow: server.killNow }
}
