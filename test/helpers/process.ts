// The gateway as an operator runs it: `node bin/portcullis.js serve` in a child process, configured
// by the environment only. Needs dist/ (`npm test` builds before tap; run `npm run build` yourself).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { tmpdir } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'

export const BIN = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url))
const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url))

export interface Exit { code: number | null, signal: NodeJS.Signals | null }

export interface ServeProcess {
  proc: ChildProcess
  /** Everything written so far (pino JSON lines on stdout). */
  stdout: () => string
  stderr: () => string
  exited: Promise<Exit>
}

/**
 * Starts `serve` with exactly `env` (plus PATH), from a scratch working directory so that no
 * `.env` file is read.
 */
export function spawnServe (env: Record<string, string>): ServeProcess {
  if (!existsSync(CLI)) throw new Error('dist/src/cli.js is missing: run `npm run build` first')
  const proc = spawn(process.execPath, [BIN, 'serve'], {
    cwd: tmpdir(),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString('utf8') })
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString('utf8') })
  const exited = new Promise<Exit>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })))
  return { proc, stdout: () => out, stderr: () => err, exited }
}

/** Resolves with the exit, or null when the process is still running after `ms`. */
export async function exitWithin (p: ServeProcess, ms: number): Promise<Exit | null> {
  return await Promise.race([p.exited, sleep(ms, null, { ref: false })])
}

/** Polls `url` until it answers 200 (true) or `ms` pass (false). */
export async function waitForOk (url: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url)
      await res.arrayBuffer()
      if (res.status === 200) return true
    } catch {}
    await sleep(50)
  }
  return false
}

/** Kills a process that a test left running (SIGKILL) and waits for it. */
export async function killHard (p: ServeProcess): Promise<void> {
  if (p.proc.exitCode === null && p.proc.signalCode === null) {
    p.proc.kill('SIGKILL')
    await p.exited
  }
}
