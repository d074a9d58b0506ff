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
  const addr = srv.address()
  srv.close()
  if (addr === null || typeof addr === 'string') throw new Error('no port')
  return addr.port
}

/** A private redis-server on a free port that a test can stop and start again. */
export class RedisServer {
  port = 0
  url = ''
  private proc: ChildProcess | null = null
  private dir = ''

  constructor (private readonly extraArgs: string[] = []) {}

  /** Starts redis-server (again, on the same port after a stop) and waits until it answers PING. */
  async start (): Promise<this> {
    if (this.port === 0) {
      this.port = await freePort()
      this.url = `redis://127.0.0.1:${this.port}`
      this.dir = await mkdtemp(join(tmpdir(), 'portcullis-redis-'))
    }
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--daemonize', 'no', '--loglevel', 'warning', ...this.extraArgs]
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] })
    this.proc = proc
    await waitForPing(this.port, 10_000)
    return this
  }

  /** Kills the server for real (SIGKILL) and waits until it is gone. */
  async stop (): Promise<void> {
    const proc = this.proc
    if (proc === null) return
    this.proc = null
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = once(proc, 'exit')
      proc.kill('SIGKILL')
      await gone
    }
  }

  /** Stops the server and removes its folder. */
  async close (): Promise<void> {
    await this.stop()
    if (this.dir !== '') await rm(this.dir, { recursive: true, force: true })
  }

  /** A plain ioredis client for assertions; the caller quits it. */
  client (): Redis {
    return new Redis(this.port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1 })
  }
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
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer within ${timeoutMs} ms`)
    await sleep(50)
  }
}

let shared: RedisServer | null = null

/**
 * The Redis a test file uses: REDIS_URL when given (CI may point at one), else a private
 * redis-server for this test file. Tests that kill Redis must use `new RedisServer()` instead.
 */
export async function sharedRedis (): Promise<{ url: string, close: () => Promise<void> }> {
  if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') {
    return { url: process.env.REDIS_URL, close: async () => {} }
  }
  shared ??= await new RedisServer().start()
  const s = shared
  return { url: s.url, close: async () => { await s.close(); shared = null } }
}
