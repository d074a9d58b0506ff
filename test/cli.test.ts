import { test } from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RedisServer, freePort } from './helpers/redis.js'
import { pointCliAt, runCli } from './helpers/cli.js'
import { digestApiKey } from '../src/tokens/keys.js'

const seed = [
  { api_key: 'cli-seed-key-aaaaaaaaaaaa', id: 'tok_seedaaaaaaaa', rate_limit: 100, expires_at: '2027-12-31T23:59:59Z', allowed_routes: ['/api/v1/users/*'] },
  { api_key: 'cli-seed-key-bbbbbbbbbbbb', rate_limit: 5, allowed_routes: ['GET /x'] }
]

/** The line every command that talks to Redis starts its stderr with (masked, with the key prefix). */
const TARGET = (url: string): string => `portcullis: Redis ${url}, key prefix "cli:"\n`

test('the token CLI against a real Redis', async (t) => {
  const server = await new RedisServer().start()
  const r = server.client()
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-cli-'))
  const restoreEnv = pointCliAt(server.url, 'cli:')
  t.teardown(async () => {
    restoreEnv()
    r.disconnect()
    await server.close()
    await rm(dir, { recursive: true, force: true })
  })

  await t.test('create prints the record with its api_key; list, show, revoke', async (t) => {
    const c = await runCli(['tokens', 'create', '--rate-limit', '100', '--burst', '20', '--route', '/api/v1/users/*', '--route', 'GET,HEAD /api/v1/products/*', '--name', 'ci bot'])
    t.equal(c.code, 0, c.err)
    t.equal(c.err, TARGET(server.url), 'stderr names the Redis and the key prefix')
    const token = JSON.parse(c.out)
    t.match(token, { api_key: /^pc_[A-Za-z0-9_-]{32}$/, id: /^tok_/, name: 'ci bot', rate_limit: 100, burst: 20, window_seconds: 60, expires_at: null, allowed_routes: ['/api/v1/users/*', 'GET,HEAD /api/v1/products/*'] })
    t.equal(await r.hget(`cli:{${digestApiKey(token.api_key)}}:token`, 'id'), token.id, 'stored under the key digest')

    const ttl = await runCli(['tokens', 'create', '--rate-limit=5', '--ttl', '2h', '--route', '/*'])
    t.equal(ttl.code, 0, ttl.err)
    const expires = Date.parse(JSON.parse(ttl.out).expires_at)
    t.ok(Math.abs(expires - (Date.now() + 7_200_000)) < 60_000, 'expires in about two hours')

    const list = await runCli(['tokens', 'list'])
    t.equal(list.code, 0)
    t.equal(list.err, TARGET(server.url) + `portcullis: 2 tokens under prefix "cli:" at ${server.url}\n`)
    const lines = list.out.trimEnd().split('\n')
    t.equal(lines.length, 2, 'one JSON line per token')
    t.same(lines.map((l) => JSON.parse(l).id).sort(), [token.id, JSON.parse(ttl.out).id].sort())
    t.notOk(list.out.includes('api_key'), 'list shows no keys')

    const show = await runCli(['tokens', 'show', token.id])
    t.equal(show.code, 0)
    const { api_key: key, ...pub } = token
    t.same(JSON.parse(show.out), pub)
    t.notOk(show.out.includes(key))
    t.same(await runCli(['tokens', 'show', 'tok_nothereaaaaa']), { code: 1, out: '', err: TARGET(server.url) + 'portcullis: no token with that id\n' })

    t.same(await runCli(['tokens', 'revoke', token.id]), { code: 0, out: 'revoked\n', err: TARGET(server.url) })
    t.equal((await runCli(['tokens', 'revoke', token.id])).code, 1, 'already revoked')
    t.equal((await runCli(['tokens', 'show', token.id])).code, 1)
    const byKey = await runCli(['tokens', 'revoke', JSON.parse(ttl.out).api_key])
    t.equal(byKey.code, 0, 'revoke by plain key')
    const missingKey = await runCli(['tokens', 'revoke', 'pc_never-issued-key-123456'])
    t.equal(missingKey.code, 1)
    t.notOk(missingKey.err.includes('pc_never-issued-key-123456'), 'a key given on the command line is not echoed')
    await r.set('another-app:key', '1')
    const empty = await runCli(['tokens', 'list'])
    t.equal(empty.out, '')
    t.equal(empty.err, TARGET(server.url) + `portcullis: 0 tokens under prefix "cli:" at ${server.url}; the database holds 1 other key\n`, 'an empty list says so on stderr')
    await r.del('another-app:key')

    // The wrong Redis (an empty one): not silently the same as "no tokens".
    const other = await new RedisServer().start()
    process.env.REDIS_URL = other.url
    try {
      const wrong = await runCli(['tokens', 'list'])
      t.same(wrong, { code: 0, out: '', err: `portcullis: Redis ${other.url}, key prefix "cli:"\nportcullis: 0 tokens under prefix "cli:" at ${other.url}; the database is empty\n` })
    } finally {
      process.env.REDIS_URL = server.url
      await other.close()
    }
  })

  await t.test('import from a file and from stdin; all-or-nothing', async (t) => {
    await r.flushdb()
    const file = join(dir, 'tokens.json')
    await writeFile(file, JSON.stringify(seed))
    const imported = await runCli(['tokens', 'import', file])
    t.equal(imported.code, 0, imported.err)
    const ids = imported.out.trimEnd().split('\n')
    t.equal(ids[0], 'tok_seedaaaaaaaa')
    t.match(ids[1], /^tok_/)
    t.equal(ids.length, 2)

    const one = await runCli(['tokens', 'import', '-'], JSON.stringify({ ...seed[0], rate_limit: 7 }))
    t.same(one, { code: 0, out: 'tok_seedaaaaaaaa\n', err: TARGET(server.url) }, 'stdin, one object: an edit of tok_seedaaaaaaaa')
    t.equal(JSON.parse((await runCli(['tokens', 'show', 'tok_seedaaaaaaaa'])).out).rate_limit, 7)

    const before = await r.dbsize()
    const bad = await runCli(['tokens', 'import', '-'], JSON.stringify([{ ...seed[0], rate_limit: 1 }, { api_key: 'short', rate_limit: 0, allowed_routes: ['/a/../b'] }]))
    t.equal(bad.code, 2)
    t.match(bad.err, /^portcullis: 3 problems, nothing written:\n {2}record 2: api_key: must be/)
    t.match(bad.err, /record 2: rate_limit: must be/)
    t.match(bad.err, /record 2: allowed_routes\[0\]: invalid route pattern/)
    t.notOk(bad.err.includes(String(seed[0]?.api_key)))
    t.equal(await r.dbsize(), before)
    t.equal(JSON.parse((await runCli(['tokens', 'show', 'tok_seedaaaaaaaa'])).out).rate_limit, 7, 'the good record was not written either')

    const conflict = await runCli(['tokens', 'import', '-'], JSON.stringify({ ...seed[1], api_key: 'a-different-key-000000', id: 'tok_seedaaaaaaaa' }))
    t.same(conflict, { code: 2, out: '', err: TARGET(server.url) + 'portcullis: record 1 (id tok_seedaaaaaaaa): id tok_seedaaaaaaaa already belongs to another token; nothing written\n' })
    t.equal(await r.dbsize(), before)
  })

  await t.test('bad arguments: exit 2, one line on stderr, Redis untouched', async (t) => {
    const badJson = join(dir, 'bad.json')
    await writeFile(badJson, '{\n  "api_key": "cli-secret-key-000000",\n  oops\n}')
    const empty = join(dir, 'empty.json')
    await writeFile(empty, '[]')
    const oldId = join(dir, 'old-id.json')
    await writeFile(oldId, JSON.stringify({ ...seed[0], id: 'seed-a' }))
    const ok = ['--rate-limit', '5', '--route', '/*']
    const cases: Array<[string[], RegExp]> = [
      [['bogus'], /unknown command "bogus"/],
      [['serve', 'now'], /serve takes no arguments/],
      [['tokens', 'frob'], /unknown tokens command "frob" \(create, import, list, show, revoke\)/],
      [['tokens', 'lsit'], /unknown tokens command "lsit" \(did you mean list\?\)/],
      [['token', 'list'], /unknown command "token"; did you mean tokens\?/],
      [['tokens', 'create', ...ok, '--rate', '5'], /Unknown option '--rate'; did you mean --rate-limit\?/],
      [['tokens', 'create', ...ok, '--brust', '5'], /Unknown option '--brust'; did you mean --burst\?/],
      [['tokens', 'create', ...ok, '--routes', '/a'], /Unknown option '--routes'; did you mean --route\?/],
      [['tokens', 'create', ...ok, '--expires=2030-01-01T00:00:00Z'], /Unknown option '--expires'; did you mean --expires-at\?/],
      [['tokens', 'show', 'x', '--hlep'], /Unknown option '--hlep'; did you mean --help\?/],
      [['tokens', 'create', '--route', '/*', '--rate-limit'], /'--rate-limit <value>' argument missing/],
      [['tokens', 'create', '--route', '/*', '--name', '--rate-limit', '5'], /'--name' argument is ambiguous/],
      [['tokens', 'create', '--route', '/*', '--rate-limit', 'ten'], /--rate-limit must be a whole number, got "ten"/],
      [['tokens', 'create', '--route', '/*', '--rate-limit', '1.5'], /--rate-limit must be a whole number/],
      [['tokens', 'create', '--route', '/*', '--rate-limit', '0'], /--rate-limit: must be requests per window/],
      [['tokens', 'create', ...ok, '--burst', ''], /--burst must be a whole number/],
      [['tokens', 'create', ...ok, '--window-seconds', '0'], /--window-seconds: must be/],
      [['tokens', 'create', ...ok, '--rate-limit', '6'], /--rate-limit given more than once/],
      [['tokens', 'create', '--rate-limit', '5'], /at least one --route PATTERN is required/],
      [['tokens', 'create', '--route', '/*'], /--rate-limit N is required/],
      [['tokens', 'create', ...ok, '--route', '/api*'], /--route: invalid route pattern "\/api\*": "\*" must be a whole segment/],
      [['tokens', 'create', ...ok, '--route', 'GTE /x'], /unknown method "GTE"/],
      [['tokens', 'create', ...ok, '--expires-at', '2099-01-01T00:00:00Z', '--ttl', '1d'], /--expires-at or --ttl, not both/],
      [['tokens', 'create', ...ok, '--expires-at', 'tomorrow'], /--expires-at: must be an RFC 3339 date-time/],
      [['tokens', 'create', ...ok, '--expires-at', '2001-01-01T00:00:00Z'], /--expires-at: 2001-01-01T00:00:00Z is in the past/],
      [['tokens', 'create', ...ok, '--ttl', '1w'], /--ttl must be a whole number and one unit/],
      [['tokens', 'create', ...ok, '--name', 'x'.repeat(129)], /--name: must be free text, at most 128/],
      [['tokens', 'create', ...ok, 'extra'], /unexpected argument "extra"/],
      [['tokens', 'import'], /missing FILE/],
      [['tokens', 'import', 'a.json', 'b.json'], /unexpected argument "b.json"/],
      [['tokens', 'import', join(dir, 'missing.json')], /cannot read .*missing\.json: ENOENT/],
      [['tokens', 'import', dir], /cannot read .*: EISDIR/],
      [['tokens', 'import', badJson], /bad\.json is not valid JSON at line 3, column 3/],
      [['tokens', 'import', empty], /the import contains no records/],
      [['tokens', 'list', 'x'], /unexpected argument "x"/],
      [['tokens', 'show'], /missing ID/],
      [['tokens', 'show', 'a', 'b'], /unexpected argument "b"/],
      [['tokens', 'import', oldId], /^portcullis: record 1: id: must be tok_ followed by 12 characters of a-z and 2-7, e\.g\. tok_k3xq7m2vb4pa; nothing written/],
      [['tokens', 'show', 'seed-a'], /^portcullis: ID must be a token id: tok_ followed by 12 characters of a-z and 2-7/],
      [['tokens', 'show', 'tok_SEEDAAAAAAAA'], /ID must be a token id/],
      [['tokens', 'show', 'tok_seedaaaaaaa1'], /ID must be a token id/],
      [['tokens', 'show', 'tok_seedaaaaaaaaa'], /ID must be a token id/],
      [['tokens', 'show', 'cli-secret-key-000000'], /ID must be a token id/],
      [['tokens', 'revoke'], /missing ID_OR_KEY/],
      [['tokens', 'revoke', '--all'], /^portcullis: Unknown option '--all' \(see/]
    ]
    await runCli(['tokens', 'create', ...ok])
    const before = await r.dbsize()
    t.ok(before > 0)
    for (const [argv, want] of cases) {
      const res = await runCli(argv)
      t.equal(res.code, 2, argv.join(' '))
      t.match(res.err, want, argv.join(' '))
      t.match(res.err, /^portcullis: [^\n]+\n$/, 'one line')
      t.equal(res.out, '')
    }
    for (const [argv, input] of [[['tokens', 'import', '-'], ''], [['tokens', 'import', '-'], 'not json'], [['tokens', 'import', '-'], '{"rate_limit": 5}']] as const) {
      const res = await runCli([...argv], input)
      t.equal(res.code, 2, `stdin ${JSON.stringify(input)}: ${res.err}`)
    }
    t.notOk((await runCli(['tokens', 'import', badJson])).err.includes('cli-secret-key'), 'invalid JSON is not quoted back')
    t.notOk((await runCli(['tokens', 'show', 'cli-secret-key-000000'])).err.includes('cli-secret-key'), 'a key given as an id is not quoted back')
    t.equal(await r.dbsize(), before, 'nothing written')
  })

  await t.test('names with C1 controls, U+2028/U+2029 or bidi controls: exit 2, one line, Redis untouched', async (t) => {
    const before = await r.dbsize()
    const rule = /^portcullis: (--name|record 1: name): must be free text, at most 128 characters, no control characters, line or paragraph separators or bidi overrides[^\n]*\n$/
    for (const ch of ['\u0080', '\u0085', '\u009b', '\u2028', '\u2029', '\u202e', '\u2066']) {
      const label = `U+${ch.charCodeAt(0).toString(16).padStart(4, '0')}`
      const created = await runCli(['tokens', 'create', '--rate-limit', '5', '--route', '/*', '--name', `ci${ch}bot`])
      t.equal(created.code, 2, `create, ${label}`)
      t.match(created.err, rule, `create, ${label}: one line naming the rule`)
      t.equal(created.out, '')
      const imported = await runCli(['tokens', 'import', '-'], JSON.stringify({ ...seed[1], api_key: 'cli-name-key-000000000000', name: `x${ch}y` }))
      t.equal(imported.code, 2, `import, ${label}`)
      t.match(imported.err, rule, `import, ${label}`)
    }
    t.equal(await r.dbsize(), before, 'nothing written')
  })

  await t.test('help and usage', async (t) => {
    for (const argv of [['--help'], ['-h'], ['help'], ['serve', '--help']]) {
      const res = await runCli(argv)
      t.equal(res.code, 0, argv.join(' '))
      t.match(res.out, /^Usage: portcullis <command>/)
      t.match(res.out, 'portcullis tokens <command> --help')
    }
    for (const argv of [['tokens', '--help'], ['tokens', 'help'], ['tokens', '-h']]) {
      const res = await runCli(argv)
      t.equal(res.code, 0, argv.join(' '))
      t.match(res.out, /^Usage: portcullis tokens <command> \[options\]/)
    }
    // Each command its own usage, options and example; none touches Redis.
    const expected: Record<string, RegExp[]> = {
      create: [/--rate-limit N\s+requests per window/, /--burst N/, /--window-seconds N/, /--expires-at TIME/, /--ttl DURATION/, /--route PATTERN/, /--name NAME/, /Example:\n {2}portcullis tokens create /],
      import: [/File format/, /"api_key": "pc_/, /"allowed_routes": \[/, /Examples:\n {2}portcullis tokens import seed\.json/],
      list: [/Example:\n {2}portcullis tokens list/, /stderr/],
      show: [/Example:\n {2}portcullis tokens show tok_/],
      revoke: [/Example:\n {2}portcullis tokens revoke tok_/]
    }
    const seen = new Set<string>()
    for (const [command, wants] of Object.entries(expected)) {
      for (const flag of ['--help', '-h']) {
        const res = await runCli(['tokens', command, flag])
        t.equal(res.code, 0, `${command} ${flag}`)
        t.equal(res.err, '', `${command} ${flag}: nothing on stderr, Redis not contacted`)
        t.match(res.out, new RegExp(`^Usage: portcullis tokens ${command}\\b`), `${command} ${flag}: its own usage`)
        for (const w of wants) t.match(res.out, w, `${command}: ${String(w)}`)
        seen.add(res.out)
      }
    }
    t.equal(seen.size, 5, 'five different help texts')
    const none = await runCli([])
    t.equal(none.code, 2)
    t.match(none.err, /^Usage:/)
    t.equal((await runCli(['tokens'])).code, 2)
  })

  await t.test('the import example of the help is a valid import', async (t) => {
    await r.flushdb()
    const help = (await runCli(['tokens', 'import', '--help'])).out
    const example = /File format[^\n]*\n([\s\S]*?\n {2}\])\n/.exec(help)?.[1] ?? ''
    const res = await runCli(['tokens', 'import', '-'], example)
    t.same(res, { code: 0, out: 'tok_alicesintegr\n', err: TARGET(server.url) }, res.err)
  })

  await t.test('configuration errors and an unreachable Redis: exit 1, one clear line, no hang', async (t) => {
    process.env.REDIS_KEY_PREFIX = '{bad}'
    const cfg = await runCli(['tokens', 'list'])
    t.equal(cfg.code, 1)
    t.match(cfg.err, /^portcullis: REDIS_KEY_PREFIX [^\n]+\n$/)
    process.env.REDIS_KEY_PREFIX = 'cli:'

    process.env.REDIS_URL = `redis://user:s3cret-pass@127.0.0.1:${await freePort()}/0`
    const started = Date.now()
    const down = await runCli(['tokens', 'create', '--rate-limit', '5', '--route', '/*'])
    t.equal(down.code, 1)
    t.match(down.err, /^portcullis: Redis redis:\/\/user:\*\*\*@127\.0\.0\.1:\d+\/0, key prefix "cli:"\nportcullis: cannot reach Redis at redis:\/\/user:\*\*\*@127\.0\.0\.1:\d+\/0: [^\n]+\n$/)
    t.notOk(down.err.includes('s3cret-pass'), 'the password is not shown')
    t.ok(Date.now() - started < 10_000, 'fails within the connect timeout')
    t.equal((await runCli(['tokens', 'create', '--rate-limit', '0', '--route', '/*'])).code, 2, 'arguments are checked before connecting')
    process.env.REDIS_URL = server.url
  })
})
