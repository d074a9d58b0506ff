// `npm start` builds first when dist/ is missing or older than any source file. Without
// node_modules (a fresh clone, `npm ci` not run yet) it says so in one line instead of failing
// deep inside tsc or an import.
import { existsSync, statSync, readdirSync } from 'node:fs'
import { execSync } from 'node:child_process'
import { join } from 'node:path'

if (!existsSync('node_modules/typescript/package.json') || !existsSync('node_modules/fastify/package.json')) {
  process.stderr.write('portcullis: run npm ci first (dependencies are not installed)\n')
  process.exit(1)
}

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
if (built < sources) {
  try {
    execSync('npm run build', { stdio: 'inherit' })
  } catch {
    // tsc has printed what is wrong; a stack of execSync would only bury it.
    process.stderr.write('portcullis: the build failed (see above)\n')
    process.exit(1)
  }
}
