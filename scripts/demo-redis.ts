/**
 * Redis for `npm run demo` (SPEC §1): the one at REDIS_URL when it answers PING within a second,
 * else a private redis-server from PATH on a free loopback port, without persistence, which
 * `close` stops and whose folder it removes.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

export interface DemoRedis {
  url: string
  /** The private redis-server's pid, or null when REDIS_URL answered. */
  pid: number | null
  /** Why REDIS_URL was not used (null when it was). */
  fallbackReason: string | null
  /** Stops a private redis-server (SIGTERM, then SIGKILL after 3 s) and removes its folder. */
  close: () => Promise<void>
  /** Synchronous last resort on process exit: SIGKILL a private redis-server. */
  killNow: () => void
}

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

/** Uses REDIS_URL (default redis://127.0.0.1:6379) when it answers, else starts a private redis-server. */
export async function demoRedis (env: NodeJS.ProcessEnv): Promise<DemoRedis> {
  const given = env.REDIS_URL === undefined || env.REDIS_URL === '' ? 'redis://127.0.0.1:6379' : env.REDIS_URL
  const problem = await pingProblem(given, 1000)
  if (problem === null) return { url: given, pid: null, fallbackReason: null, close: async () => {}, killNow: () => {} }

  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-demo-redis-'))
  // Its own process group: the terminal's Ctrl-C reaches only the demo, which stops the
  // gateway before Redis instead of both dying at once.
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'], detached: true })
  const close = async (): Promise<void> => {
    await stop(proc)
    await rm(dir, { recursive: true, force: true })
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
  spawnFailed.catch(() => {}) // a later exit is handled by whoever uses the server
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: proc.pid ?? null,
    fallbackReason: `${given}: ${problem}`,
    close,
    killNow: () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') }
  }
}

async function stop (proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return
  const gone = once(proc, 'exit')
  proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), 3000)
  await gone
  clearTimeout(timer)
}

async function waitForPing (port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (await pingProblem(`redis://127.0.0.1:${port}`, 500) !== null) {
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms`)
    await sleep(50)
  }
}
