/**
 * How much CPU time the hypervisor took from each core while the bench ran ("steal" in
 * /proc/stat: time a virtual core was ready to run but the host ran something else). On a shared
 * virtual machine it is the noise that no pinning removes, so `npm run bench` prints it beside the
 * figures it disturbs. Linux only; elsewhere there is nothing to read and nothing is printed.
 */
import { readFileSync } from 'node:fs'

/** One core's counters (clock ticks since boot): all time, and the part stolen. */
export interface CoreTimes { total: number, steal: number }

/**
 * The per-core lines of /proc/stat (`cpu0 user nice system idle iowait irq softirq steal …`), in
 * core order. The aggregate `cpu` line is left out; a kernel without the steal column gives 0.
 */
export function parseProcStat (text: string): CoreTimes[] {
  const cores: CoreTimes[] = []
  for (const line of text.split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line)
    if (m === null) continue
    const fields = (m[2] as string).trim().split(/\s+/).map(Number)
    if (fields.some((n) => !Number.isFinite(n))) throw new Error(`unreadable /proc/stat line: ${line}`)
    // guest and guest_nice (fields 9–10) are already counted in user and nice.
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0)
    cores[Number(m[1])] = { total, steal: fields[7] ?? 0 }
  }
  return cores
}

/** The counters now, or null where there is no /proc/stat. */
export function readCoreTimes (): CoreTimes[] | null {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'utf8'))
  } catch {
    return null
  }
}

/** Per core, the percentage of the time between two readings that was stolen (0 when no time passed). */
export function stealPercent (before: CoreTimes[], after: CoreTimes[]): number[] {
  return after.map((a, i) => {
    const b = before[i] ?? { total: 0, steal: 0 }
    const total = a.total - b.total
    return total > 0 ? Math.round(1000 * (a.steal - b.steal) / total) / 10 : 0
  })
}
