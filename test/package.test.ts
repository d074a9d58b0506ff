// The published package: `npm pack` holds bin/ and the compiled dist/ (built by `prepack`), and the
// `portcullis` command npm puts on PATH runs from any directory. Installed as `npm install -g`
// lays it out (lib/node_modules/portcullis + a bin symlink), with the dependencies linked from
// this checkout so the test needs no registry.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NODE_FLAGS } from '../src/node-flags.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>, scripts: Record<string, string>, files: string[] }

t.test('`npm start` runs the gateway with its Node.js options (src/node-flags.ts)', async (t) => {
  t.equal(pkg.scripts.start, ['node', ...NODE_FLAGS, 'bin/portcullis.js', 'serve'].join(' '))
})

t.test('npm pack, installed globally into a prefix, `portcullis` runs from another directory', async (t) => {
  t.equal(pkg.bin.portcullis, 'bin/portcullis.js', 'the bin is declared')
  t.match(pkg.scripts.prepack, /npm run build/, 'prepack builds dist/')
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-pack-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  // --ignore-scripts: dist/ is already built (npm test builds first); a rebuild here would rewrite
  // files under other test files that are running.
  const packed = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' })) as Array<{ filename: string, files: Array<{ path: string }> }>
  const files = packed[0]?.files.map((f) => f.path) ?? []
  for (const f of ['bin/portcullis.js', 'dist/src/cli.js', 'dist/src/server.js', 'dist/src/lib/gcra.lua', 'dist/plugins/redis.js', 'dist/routes/proxy.js', 'package.json']) {
    t.ok(files.includes(f), `the tarball holds ${f}`)
  }
  t.notOk(files.some((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('src/') || f.endsWith('.map')), 'no tests, sources or source maps')

  const pkgDir = join(dir, 'prefix', 'lib', 'node_modules', 'portcullis')
  mkdirSync(pkgDir, { recursive: true })
  execFileSync('tar', ['-xzf', join(dir, packed[0]?.filename ?? ''), '-C', pkgDir, '--strip-components', '1'])
  symlinkSync(join(ROOT, 'node_modules'), join(pkgDir, 'node_modules'))
  mkdirSync(join(dir, 'prefix', 'bin'))
  const bin = join(dir, 'prefix', 'bin', 'portcullis')
  symlinkSync(join('..', 'lib', 'node_modules', 'portcullis', 'bin', 'portcullis.js'), bin)

  const elsewhere = mkdtempSync(join(tmpdir(), 'portcullis-cwd-'))
  t.teardown(() => { rmSync(elsewhere, { recursive: true, force: true }) })
  const help = spawnSync(bin, ['--help'], { cwd: elsewhere, encoding: 'utf8', timeout: 30_000 })
  t.equal(help.status, 0, help.stderr)
  t.match(help.stdout, /^Usage: portcullis <command>/)
  const sub = spawnSync(bin, ['tokens', 'create', '--help'], { cwd: elsewhere, encoding: 'utf8', timeout: 30_000 })
  t.equal(sub.status, 0, sub.stderr)
  t.match(sub.stdout, /^Usage: portcullis tokens create/)
  const bad = spawnSync(bin, ['serve'], { cwd: elsewhere, encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '' } })
  t.equal(bad.status, 1, 'serve without ROUTES: the configuration error, from the installed copy')
  t.match(bad.stderr, /^portcullis: invalid configuration: ROUTES is required/)
})
