/**
 * "Did you mean …?" for a mistyped flag or command: the candidate that starts with what was typed
 * (`--rate` → `--rate-limit`), else the one nearest by edit distance, if near enough to be a typo.
 */

/** Edit distance: insertions, deletions, substitutions and swaps of two neighbours (`brust` → `burst` is 1). */
export function editDistance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : j === 0 ? i : 0))
  const at = (i: number, j: number): number => d[i]?.[j] ?? 0
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1)
      ;(d[i] as number[])[j] = v
    }
  }
  return at(a.length, b.length)
}

/** The candidate the user most likely meant, or null when none is close. */
export function nearest (typed: string, candidates: readonly string[]): string | null {
  if (typed === '') return null
  const prefixed = candidates.filter((c) => c.startsWith(typed))
  if (prefixed.length === 1) return prefixed[0] ?? null
  // Dashes are not letters: `--all` is not two edits from `--ttl` because both start with `--`.
  const word = typed.replace(/^-+/, '')
  let best: string | null = null
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = editDistance(word, c.replace(/^-+/, ''))
    if (d < bestDistance) { best = c; bestDistance = d }
  }
  // A third of the word, at least 1: `--brust` → `--burst`, but `--all` suggests nothing.
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : null
}
