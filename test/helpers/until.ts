// Polling for a condition that a real server, socket or process makes true in its own time.
import { setTimeout as sleep } from 'node:timers/promises'

/** Checks `cond` every `stepMs` until it holds or `ms` have passed; resolves with its last value. */
export async function until (cond: () => boolean | Promise<boolean>, ms = 10_000, stepMs = 20): Promise<boolean> {
  const deadline = performance.now() + ms
  while (!(await cond()) && performance.now() < deadline) await sleep(stepMs)
  return await cond()
}
