/** The package version, read once from package.json (one level up from src/, two from dist/src/). */
import { readFileSync } from 'node:fs'

/** `version` of package.json, or "unknown" if it cannot be read. */
export function packageVersion (): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'portcullis' && typeof pkg.version === 'string') return pkg.version
    } catch {}
  }
  return 'unknown'
}
