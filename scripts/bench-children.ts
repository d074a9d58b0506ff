/**
 * The server children of `npm run bench` (scripts/bench-target.ts) and the CPU pinning: on a
 * machine with at least 2 cores and `taskset`, this process (autocannon), Redis and the upstream
 * share core 0 and each proxy runs alone on core 1, so a proxy's throughput is what one core gives.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { ParentMessage, TargetMessage, TargetRole } from './bench-target.js'
import { NODE_FLAGS } from '../src/node-flags.js'
import type { MajorGcPauses } from './bench-gc.js'

/** The cores things run on, or null when not pinned (one core, or no taskset). */
export interface Pinning { load: number, proxy: number }

/** Pins this process (every thread) to core 0 when it can; its later children inherit that. */
export function pinSelf (): Pinning | null {
  if (availableParallelism() < 2) return null
  try {
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' })
    return { load: 0, proxy: 1 }
  } catch {
    return null // no taskset: unpinned, and the report says so
  }
}

/** A server child: its port, its RSS and CPU time on demand, and a clean stop (exit awaited). */
export interface Target {
  role: TargetRole
  port: number
  body: string | undefined
  proc: ChildProcess
  stats: () => Promise<{ rss: number, cpuMicros: number, majorGcs: MajorGcPauses }>
  stop: () => Promise<void>
}

/**
 * Starts bench-target.js in `role`, pinned to the proxy core when `pin` is given (the upstream
 * stays with the load generator); with `cpuProfDir` the child runs under --cpu-prof. Every
 * child, the upstream included, runs with the Node.js options the gateway ships with
 * (src/node-flags.ts): the same runtime for the three contenders, and an upstream whose own
 * full collections do not stall the paced rounds of whichever contender they fall in.
 */
export async function startTarget (role: TargetRole, env: Record<string, string>, pin: Pinning | null, cpuProfDir: string | null): Promise<Target> {
  const script = fileURLToPath(new URL('./bench-target.js', import.meta.url))
  const profArgs = cpuProfDir === null || role === 'upstream'
    ? []
    : ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`, `--cpu-prof-name=${role}.cpuprofile`]
  const nodeArgs = [...NODE_FLAGS, ...profArgs]
  const argv = [...nodeArgs, script, role]
  // taskset execs node in the same process: the IPC channel (an inherited fd) still works.
  const [cmd, args] = pin !== null && role !== 'upstream'
    ? ['taskset', ['-c', String(pin.proxy), process.execPath, ...argv]]
    : [process.execPath, argv]
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const next = async <T extends TargetMessage['type']>(type: T): Promise<Extract<TargetMessage, { type: T }>> =>
    await new Promise((resolve, reject) => {
      const onMessage = (m: TargetMessage): void => {
        if (m.type !== type) return
        proc.off('exit', onExit)
        proc.off('message', onMessage)
        resolve(m as Extract<TargetMessage, { type: T }>)
      }
      const onExit = (code: number | null): void => {
        proc.off('message', onMessage)
        reject(new Error(`${role} child exited (code ${code}) before answering ${type}`))
      }
      proc.on('message', onMessage)
      proc.once('exit', onExit)
    })
  const ask = (m: ParentMessage): void => { proc.send(m) }
  const ready = await next('ready')
  return {
    role,
    port: ready.port,
    body: ready.body,
    proc,
    stats: async () => { const r = next('stats'); ask({ type: 'stats' }); return await r },
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const gone = once(proc, 'exit')
      ask({ type: 'stop' })
      const timer = setTimeout(() => { proc.kill('SIGKILL') }, 10_000)
      await gone
      clearTimeout(timer)
    }
  }
}
