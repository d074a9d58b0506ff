/**
 * Full collections (V8 mark-compact) of a bench child, so that `npm run bench` can say which
 * paced rounds had one in the proxy: such a collection stalls the event loop for 5–15 ms, and at
 * the paced rate the queue it leaves sets that round's p99 (docs/performance.md, "What the long
 * episodes are"). Scavenges are left out: every round has dozens of them.
 */
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks'

/** The full collections a process has had since `watchMajorGcs`: each one's pause (ms), in order. */
export type MajorGcPauses = number[]

/** Full collections between two readings of the same process. */
export interface MajorGcsBetween { count: number, longestPauseMs: number }

/** Starts recording this process's full collections; the function returned reads them so far (a copy). */
export function watchMajorGcs (): () => MajorGcPauses {
  const pauses: MajorGcPauses = []
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail
      if (detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) pauses.push(entry.duration)
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  return () => [...pauses]
}

/** The full collections in `after` that `before` (an earlier reading of the same process) lacks. */
export function majorGcsBetween (before: MajorGcPauses, after: MajorGcPauses): MajorGcsBetween {
  const added = after.slice(before.length)
  return { count: added.length, longestPauseMs: added.reduce((a, b) => Math.max(a, b), 0) }
}

/** "none", or "1 (13.4 ms)", "2 (longest 9.8 ms)": for the bench's round lines. */
export function describeMajorGcs (g: MajorGcsBetween): string {
  if (g.count === 0) return 'none'
  const ms = `${g.longestPauseMs.toFixed(1)} ms`
  return g.count === 1 ? `1 (${ms})` : `${g.count} (longest ${ms})`
}
