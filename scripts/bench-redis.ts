/**
 * Redis for `npm run bench`: the one at REDIS_URL when given, else a private redis-server from
 * PATH on a free loopback port (no persistence), killed again by `close`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

export interface BenchRedis {
  url: string
  /** True when this process started redis-server (and so owns it). */
  private: boolean
  close: () => Promise<void>
  /** Synchronous last resort (the watchdog): SIGKILL a private redis-server, leave its folder. */
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

/** REDIS_URL when set, else a private redis-server that answers PING before this resolves. */
export async function startRedis (env: NodeJS.ProcessEnv): Promise<BenchRedis> {
  const given = env.REDIS_URL
  if (given !== undefined && given !== '') return { url: given, private: false, close: async () => {}, killNow: () => {} }
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-redis-'))
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'] })
  const close = async (): Promise<void> => {
    await kill(proc)
    await rm(dir, { recursive: true, force: true })
  }
  const spawnFailed = new Promise<never>((_resolve, reject) => {
    proc.once('error', (err) => { reject(new Error(`cannot start redis-server from PATH: ${err.message}`)) })
  })
  try {
    await Promise.race([waitForPing(port, 10_000), spawnFailed])
  } catch (err) {
    await close()
    throw err
  }
  return { url: `redis://127.0.0.1:${port}`, private: true, close, killNow: () => { proc.kill('SIGKILL') } }
}

async function kill (proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return
  const gone = once(proc, 'exit')
  proc.kill('SIGKILL')
  await gone
}

async function waitForPing (port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    c.on('error', () => {})
    try {
      await c.connect()
      if (await c.ping() === 'PONG') { c.disconnect(); return }
    } catch {
      c.disconnect()
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms`)
    await sleep(50)
  }
}

/** Calls per command from `INFO commandstats` (command name lower-cased, e.g. `evalsha`). */
export async function commandCalls (redis: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    out.set((m[1] as string).toLowerCase(), Number(m[2]))
  }
  return out
}

/** after − before, per command, leaving out commands whose count did not change. */
export function callsBetween (before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, n] of after) {
    const d = n - (before.get(name) ?? 0)
    if (d !== 0) out[name] = d
  }
  return out
}

/**
 * Commands clients sent besides the script calls. commandstats also counts the commands a script
 * runs inside Redis; the gate script runs each of its commands at most once per call, so only
 * counts beyond `scriptCalls` (and every command the script never runs) came over the wire.
 */
export function commandsOutsideScript (delta: Record<string, number>, scriptCalls: number, script: string): Record<string, number> {
  const inScript = new Set([...script.matchAll(/redis\.call\(\s*['"](\w+)['"]/g)].map((m) => (m[1] as string).toLowerCase()))
  const out: Record<string, number> = {}
  for (const [name, n] of Object.entries(delta)) {
    if (name === 'evalsha' || name === 'eval') continue
    const extra = inScript.has(name) ? n - scriptCalls : n
    if (extra > 0) out[name] = extra
  }
  return out
}
