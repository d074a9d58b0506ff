// `npm start` builds first when dist/ is missing or older than any source file.
import { existsSync, statSync, readdirSync } from 'node:fs'
import { execSync } from 'node:child_process'
import { join } from 'node:path'

const newest = (dir) => {
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return t
}
const built = existsSync('dist/src/cli.js') ? statSync('dist/src/cli.js').mtimeMs : 0
const sources = Math.max(...['src', 'plugins', 'routes'].map(newest))
if (built < sources) execSync('npm run build', { stdio: 'inherit' })
