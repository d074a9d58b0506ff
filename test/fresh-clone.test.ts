// A fresh clone without `npm ci`: `npm start` and the bin say "run npm ci first" in one line,
// exit 1, instead of `tsc: not found` or an import stack.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** The tracked files of this working tree (as a clone has them), in a temp folder. */
function freshClone (): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-clone-'))
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT }).toString('utf8').split('\0').filter((f) => f !== '')
  for (const f of files) {
    try {
      mkdirSync(dirname(join(dir, f)), { recursive: true })
      cpSync(join(ROOT, f), join(dir, f))
    } catch {} // a tracked file deleted in the working tree
  }
  return dir
}

t.test('npm start without node_modules', async (t) => {
  const dir = freshClone()
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const res = spawnSync('npm', ['start', '--silent'], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir } })
  t.equal(res.status, 1, 'exit 1')
  t.equal(res.stderr, 'portcullis: run npm ci first (dependencies are not installed)\n', 'one line on stderr')
  t.notMatch(res.stderr + res.stdout, /tsc: not found|\n\s+at /, 'no tsc error, no stack')
})

t.test('the bin with dist/ but without node_modules', async (t) => {
  const dir = freshClone()
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true })
  const res = spawnSync(process.execPath, ['bin/portcullis.js', 'tokens', 'list'], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
  t.equal(res.status, 1)
  t.equal(res.stderr, 'portcullis: run npm ci first (dependencies are not installed)\n')

  rmSync(join(dir, 'dist'), { recursive: true })
  const unbuilt = spawnSync(process.execPath, ['bin/portcullis.js', '--help'], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
  t.equal(unbuilt.status, 1)
  t.equal(unbuilt.stderr, 'portcullis: dist/ is missing; run `npm run build` first\n')
})
