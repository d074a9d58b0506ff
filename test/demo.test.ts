// `npm run demo`: runs the compiled dist/scripts/demo.js (`npm run build` first, as
// `npm test` does), reads the curl lines it prints, runs them with undici, then Ctrl-C (SIGINT)
// must stop everything it started and exit 0.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { freePort, sharedRedis, scanKeys } from './helpers/redis.js'
import { CALM } from './helpers/gateway.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DEMO = fileURLToPath(new URL('../dist/scripts/demo.js', import.meta.url))

interface Demo { proc: ChildProcess, out: string, err: () => string }

/** Starts the demo and resolves with its banner (stdout up to the Ctrl-C line). */
async function startDemo (env: Record<string, string>, args: string[] = []): Promise<Demo> {
  const proc = spawn(process.execPath, [DEMO, ...args], { cwd: ROOT, env: { ...process.env, ...CALM, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const banner = new Promise<string>((resolve, reject) => {
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('Ctrl-C stops everything')) resolve(out)
    })
    proc.once('exit', (code, signal) => reject(new Error(`demo exited early (${signal ?? code}): ${err}`)))
    setTimeout(() => reject(new Error(`no banner within 30 s; stdout: ${out}; stderr: ${err}`)), 30_000).unref()
  })
  return { proc, out: await banner, err: () => err }
}

/** SIGINT, then the exit code (null when killed by a signal) within 15 s. */
async function interrupt (proc: ChildProcess): Promise<number | null> {
  const exited = once(proc, 'exit') as Promise<[number | null, string | null]>
  proc.kill('SIGINT')
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
  const [code] = await exited
  clearTimeout(timer)
  return code
}

/** Shell words of one line: single and double quotes, `;` as its own word. */
function words (line: string): string[] {
  const out: string[] = []
  let cur: string | null = null
  let quote: string | null = null
  for (const ch of line) {
    if (quote !== null) {
      if (ch === quote) quote = null
      else cur = (cur ?? '') + ch
    } else if (ch === '\'' || ch === '"') {
      quote = ch
      cur ??= ''
    } else if (ch === ' ' || ch === ';') {
      if (cur !== null) out.push(cur)
      cur = null
      if (ch === ';') out.push(';')
    } else {
      cur = (cur ?? '') + ch
    }
  }
  if (cur !== null) out.push(cur)
  return out
}

interface Curl { method: string, url: string, headers: Record<string, string>, body: string | undefined, times: number }

/** The request a printed curl line (or `for i in …; do curl …; done`) makes. */
function parseCurl (line: string): Curl {
  let w = words(line.trim())
  let times = 1
  if (w[0] === 'for') {
    times = w.indexOf(';') - w.indexOf('in') - 1
    w = w.slice(w.indexOf('do') + 1, w.lastIndexOf(';'))
  }
  if (w[0] !== 'curl') throw new Error(`not a curl line: ${line}`)
  const c: Curl = { method: 'GET', url: '', headers: {}, body: undefined, times }
  for (let i = 1; i < w.length; i++) {
    const a = w[i] as string
    if (a === '-H') {
      const h = w[++i] as string
      c.headers[h.slice(0, h.indexOf(':')).toLowerCase()] = h.slice(h.indexOf(':') + 1).trim()
    } else if (a === '-X') c.method = w[++i] as string
    else if (a === '-d') { c.body = w[++i]; if (c.method === 'GET') c.method = 'POST' } else if (a === '-o' || a === '-w') i++
    else if (a.startsWith('http')) c.url = a
  }
  return c
}

/** `# NNN: …` comments in the banner, each with the command on the next line. */
function examples (banner: string): Map<string, string> {
  const lines = banner.split('\n')
  const out = new Map<string, string>()
  lines.forEach((l, i) => {
    const m = /^\s*# (\d{3}|admin API|API docs)/.exec(l)
    if (m !== null) out.set(m[1] as string, lines[i + 1]?.trim() ?? '')
  })
  return out
}

async function run (c: Curl): Promise<Array<{ status: number, text: string, headers: Record<string, unknown> }>> {
  const res = []
  for (let i = 0; i < c.times; i++) {
    const r = await request(c.url, { method: c.method as 'GET', headers: c.headers, body: c.body })
    res.push({ status: r.statusCode, text: await r.body.text(), headers: r.headers })
  }
  return res
}

async function refuses (port: number): Promise<boolean> {
  const s = connect(port, '127.0.0.1')
  const refused = await new Promise<boolean>((resolve) => {
    s.once('connect', () => resolve(false))
    s.once('error', () => resolve(true))
  })
  s.destroy()
  return refused
}

if (!existsSync(DEMO)) {
  t.fail(`${DEMO} is missing: run \`npm run build\` first (npm test does)`)
} else {
  t.test('by default: a private redis-server (no Redis at a default address is probed), the printed curl lines work, Ctrl-C stops it all', async (t) => {
    // Occupy the port the demo is told to use: it must fall back to a free one.
    const squatter = createServer()
    squatter.listen(0, '127.0.0.1')
    await once(squatter, 'listening')
    const taken = (squatter.address() as { port: number }).port
    t.teardown(() => { squatter.close() })

    const demo = await startDemo({ REDIS_URL: '', PORT: String(taken) })
    t.teardown(() => { if (demo.proc.exitCode === null) demo.proc.kill('SIGKILL') })
    const redisM = /redis\s+redis:\/\/127\.0\.0\.1:(\d+) \(private redis-server, pid (\d+)/.exec(demo.out)
    t.ok(redisM, 'a private redis-server was started')
    const redisPort = Number(redisM?.[1])
    const redisPid = Number(redisM?.[2])
    t.teardown(() => { try { process.kill(redisPid, 'SIGKILL') } catch {} }) // only if a failure left it behind
    const gwM = /gateway\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(demo.out)
    const gwPort = Number(gwM?.[1])
    t.not(gwPort, taken, 'PORT was taken: the gateway listens elsewhere')
    t.match(demo.out, `port ${taken} is taken`)
    t.notOk(await refuses(redisPort), 'the private redis-server answers while the demo runs')

    const ex = examples(demo.out)
    const ok = await run(parseCurl(ex.get('200') ?? ''))
    t.equal(ok[0]?.status, 200, 'the 200 line')
    t.match(JSON.parse(ok[0]?.text ?? '{}'), { users: { id: 1 }, upstream_saw: { authorization_forwarded: false, 'x-consumer-id': /^tok_/ } })
    t.match(ok[0]?.headers.ratelimit, /^"default";r=\d+;t=\d+$/)
    const missing = await run(parseCurl(ex.get('401') ?? ''))
    t.equal(missing[0]?.status, 401, 'the 401 line')
    t.match(missing[0]?.headers['www-authenticate'], /^Bearer/)
    t.equal((await run(parseCurl(ex.get('403') ?? '')))[0]?.status, 403, 'the 403 line')
    const loop = parseCurl(ex.get('429') ?? '')
    t.equal(loop.times, 6, 'a loop of 6 requests')
    const statuses = (await run(loop)).map((r) => r.status)
    t.equal(statuses[0], 200, `the loop starts with 200 (${statuses.join(',')})`)
    t.equal(statuses.at(-1), 429, 'and ends with 429')
    t.ok(statuses.every((s) => s === 200 || s === 429))

    const adminLines = demo.out.split('\n').filter((l) => l.includes('/admin/tokens')).map(parseCurl)
    t.equal(adminLines.length, 2, 'two admin lines')
    const list = (await run(adminLines[0] as Curl))[0]
    t.equal(list?.status, 200)
    t.match(JSON.parse(list?.text ?? '[]'), [{ name: 'demo', rate_limit: 5, allowed_routes: ['/api/v1/users/*'] }])
    t.equal((await run(adminLines[1] as Curl))[0]?.status, 201, 'the admin create line')
    const docs = /open (http\S+\/docs)/.exec(demo.out)?.[1] ?? ''
    const docsRes = await request(docs.replace(/\/docs$/, '/docs/'))
    t.equal(docsRes.statusCode, 200, '/docs')
    t.match(await docsRes.body.text(), /swagger/i)

    t.notMatch(demo.err(), /6379|no Redis at/, 'no Redis at 127.0.0.1:6379 was tried')
    t.notMatch(demo.out, /6379/)
    const cli = demo.out.split('\n').find((l) => l.includes('portcullis tokens list')) ?? ''
    t.match(cli.trim(), new RegExp(`^REDIS_URL=redis://127\\.0\\.0\\.1:${redisPort} REDIS_KEY_PREFIX=portcullis-demo: npx portcullis tokens list$`), 'the CLI line uses portcullis, not node bin/portcullis.js')
    const code = await interrupt(demo.proc)
    t.equal(code, 0, `exit 0 on SIGINT (stderr: ${demo.err().slice(-500)})`)
    t.match(demo.err(), /demo: removed \d+ keys under portcullis-demo:/)
    t.ok(await refuses(redisPort), 'the private redis-server\'s port refuses')
    t.throws(() => process.kill(redisPid, 0), { code: 'ESRCH' }, 'and its process is gone')
    t.ok(await refuses(gwPort), 'the gateway is gone')
  })

  for (const how of ['REDIS_URL', '--redis-url'] as const) {
    t.test(`with a Redis chosen by ${how}: it is used, under portcullis-demo:, and every key under it is removed on exit`, async (t) => {
      const redis = await sharedRedis()
      const r = new Redis(redis.url, { maxRetriesPerRequest: 1 })
      t.teardown(async () => { r.disconnect(); await redis.close() })
      await r.set('another-program:key', 'keep me')
      const demo = how === 'REDIS_URL'
        ? await startDemo({ REDIS_URL: redis.url, PORT: '0' })
        : await startDemo({ REDIS_URL: '', PORT: '0' }, ['--redis-url', redis.url])
      t.teardown(() => { if (demo.proc.exitCode === null) demo.proc.kill('SIGKILL') })
      t.match(demo.out, `${redis.url} (${how}; keys under portcullis-demo:, removed on exit)`)
      t.notMatch(demo.out, 'private redis-server')
      const ex = examples(demo.out)
      t.equal((await run(parseCurl(ex.get('200') ?? '')))[0]?.status, 200)
      // A token made through the printed admin line: the old demo left it behind.
      const create = demo.out.split('\n').filter((l) => l.includes('-X POST') && l.includes('/admin/tokens')).map(parseCurl)[0] as Curl
      const made = (await run(create))[0]
      t.equal(made?.status, 201)
      const during = await scanKeys(r, 'portcullis-demo:*')
      t.ok(during.length >= 3, `the demo's keys are under its prefix (${during.join(', ')})`)
      t.same(await scanKeys(r, 'portcullis:*'), [], 'nothing under the default prefix')
      t.equal(await interrupt(demo.proc), 0, 'exit 0 on SIGINT')
      t.same(await scanKeys(r, 'portcullis-demo:*'), [], 'no key under the prefix remains, the admin-made token included')
      t.equal(await r.get('another-program:key'), 'keep me', 'other keys are untouched')
      t.equal(await r.ping(), 'PONG', 'a Redis the demo did not start keeps running')
    })
  }

  t.test('a chosen Redis that does not answer: exit 1 naming it (password masked), nothing started', async (t) => {
    const port = await freePort()
    const proc = spawn(process.execPath, [DEMO], { cwd: ROOT, env: { ...process.env, REDIS_URL: `redis://:pw-secret@127.0.0.1:${port}` }, stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    const [code] = await once(proc, 'exit') as [number | null]
    t.equal(code, 1)
    t.match(err, `demo: no Redis answers at redis://:***@127.0.0.1:${port} (REDIS_URL)`)
    t.notMatch(err, 'pw-secret')
  })
}
