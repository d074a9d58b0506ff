import { test } from 'tap'
import { readFileSync, existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { request } from 'undici'
import { sharedRedis, freePort } from './helpers/redis.js'
import { Upstream } from './helpers/upstream.js'
import { NODE_FLAGS } from '../src/node-flags.js'

// Docker has no engine on this machine: check what can be checked without building the image.
const root = new URL('..', import.meta.url).pathname
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
// One entry per instruction: continuation lines (`\` at the end) joined, comments dropped.
const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }

test('every path the Dockerfile copies from the build context exists', async (t) => {
  const copies = lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
  t.ok(copies.length >= 5, 'the Dockerfile copies the sources')
  for (const line of copies) {
    const parts = line.split(/\s+/).slice(1)
    for (const src of parts.slice(0, -1)) t.ok(existsSync(join(root, src)), `${src} exists (${line})`)
  }
  for (const ignored of readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').filter((l) => l.trim() !== '')) {
    t.notOk(copies.some((l) => l.split(/\s+/)[1] === ignored), `${ignored} is not copied from the context`)
  }
})

test('multi-stage, npm ci --omit=dev at runtime, non-root user, HEALTHCHECK on /healthz', async (t) => {
  const froms = lines.filter((l) => l.startsWith('FROM '))
  t.equal(froms.length, 2, 'two stages')
  const runtime = lines.slice(lines.indexOf(froms[1] as string))
  t.ok(runtime.some((l) => /^RUN npm ci --omit=dev\b/.test(l)), 'runtime installs production dependencies only')
  t.ok(runtime.some((l) => /^USER (?!0\b)\d+:\d+$/.test(l)), 'runtime runs as a numeric non-root uid:gid (Kubernetes runAsNonRoot can check it)')
  t.ok(froms.every((l) => /^FROM node:24-bookworm-slim\b/.test(l)), 'both stages on Node 24 LTS, Debian slim (it ships /bin/sleep for the preStop hook)')
  t.match(dockerfile, /HEALTHCHECK[\s\S]*\/healthz/, 'HEALTHCHECK probes /healthz')
  t.ok(runtime.some((l) => l.startsWith('COPY --from=build /app/dist ./dist')), 'the compiled output comes from the build stage')
})

test('the runtime needs no devDependency: every bare import in dist/ is a dependency or node builtin', async (t) => {
  const files: string[] = []
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e)
      if (statSync(p).isDirectory()) walk(p)
      else if (p.endsWith('.js') && !p.includes(`${join('dist', 'scripts')}`)) files.push(p)
    }
  }
  walk(join(root, 'dist', 'src'))
  walk(join(root, 'dist', 'plugins'))
  walk(join(root, 'dist', 'routes'))
  const deps = new Set(Object.keys(pkg.dependencies))
  for (const f of files) {
    const source = readFileSync(f, 'utf8')
    // Static `import … from 'x'`, side-effect `import 'x'` and dynamic `import('x')`, as tsc emits them.
    for (const m of source.matchAll(/^(?:import|export)\s[^;]*?\bfrom\s*'([^']+)'|^import\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/gm)) {
      const spec = (m[1] ?? m[2] ?? m[3]) as string
      if (spec.startsWith('node:') || spec.startsWith('.')) continue
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string)
      t.ok(deps.has(name), `${name} (imported by ${f.slice(root.length)}) is a dependency`)
    }
  }
})

test('the image CMD starts the built gateway: /healthz answers 200', async (t) => {
  const cmd = lines.filter((l) => l.startsWith('CMD ')).pop()
  t.ok(cmd !== undefined)
  const argv = JSON.parse((cmd as string).slice(4)) as string[]
  t.same(argv, ['node', ...NODE_FLAGS, 'bin/portcullis.js', 'serve'], 'node with the gateway\'s options (src/node-flags.ts)')
  const redis = await sharedRedis()
  const up = await new Upstream().start()
  const port = await freePort()
  const child = spawn(argv[0] as string, argv.slice(1), {
    cwd: root,
    env: { PATH: process.env.PATH, REDIS_URL: redis.url, ROUTES: `/api=${up.url}`, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  t.teardown(async () => { child.kill('SIGKILL'); await up.close(); await redis.close() })
  let status = 0
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline && status !== 200) {
    try {
      status = (await request(`http://127.0.0.1:${port}/healthz`)).statusCode
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  t.equal(status, 200, 'the CMD serves /healthz')
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 0, 'SIGTERM exits cleanly')
})
