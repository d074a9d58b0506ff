// `portcullis tokens …`: every argument and input file is checked before Redis is contacted, so a
// mistake exits 2 having written nothing (and without needing Redis to be up).
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { Cluster } from 'ioredis'
import { loadConfig, type Config } from './lib/config.js'
import { createRedisClient, waitUntilReady, type RedisClient } from './redis-client.js'
import { TOKEN_ID_SHAPE, looksLikeTokenId } from './tokens/ids.js'
import { TokenStore } from './tokens/store.js'
import { TokenInputError, validateImportList, validateTokenInput } from './tokens/validate.js'
import { parseTtl } from './cli-ttl.js'
import { formatRfc3339 } from './lib/rfc3339.js'
import { redisTarget } from './lib/redis-target.js'
import { nearest } from './lib/suggest.js'
import { COMMAND_HELP, TOKENS_USAGE } from './cli-help.js'

/** Where the CLI reads and writes; tests pass their own streams. */
export interface CliIo {
  stdout: { write: (text: string) => unknown }
  stderr: { write: (text: string) => unknown }
  stdin: AsyncIterable<string | Buffer>
}

/** A mistake in the command line or its input: exit 2, nothing written. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** A failure that is not the caller's typo (Redis unreachable, not found): exit 1. */
export class RuntimeError extends Error {
  override name = 'RuntimeError'
}

/** How long the CLI waits for Redis before giving up with exit 1. */
export const CLI_CONNECT_TIMEOUT_MS = 3000
// A list of many tokens takes longer than the gateway's per-request budget.
const CLI_COMMAND_TIMEOUT_MS = 10_000

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>
type Values = Record<string, string | string[] | boolean | undefined>

/** parseArgs, strict, with its errors shortened to one sentence and repeated single flags refused. */
function parse (args: string[], options: Options, positionals: string[]): { values: Values, positionals: string[] } {
  let parsed
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true, tokens: true })
  } catch (err) {
    const message = String((err as Error).message).split(/\.(?:\s|$)/)[0] ?? 'invalid arguments'
    const unknown = /^Unknown option '(-[^']*)'/.exec(message)?.[1]
    const guess = unknown === undefined ? null : nearest(unknown.replace(/=.*$/, ''), Object.keys(options).map((o) => `--${o}`))
    throw new UsageError(guess === null ? message : `${message}; did you mean ${guess}?`)
  }
  const seen = new Set<string>()
  for (const t of parsed.tokens) {
    if (t.kind !== 'option' || options[t.name]?.multiple === true) continue
    if (seen.has(t.name)) throw new UsageError(`--${t.name} given more than once`)
    seen.add(t.name)
  }
  const values = parsed.values as Values
  if (values.help !== true && parsed.positionals.length !== positionals.length) {
    const want = positionals.length === 0 ? 'no arguments' : positionals.join(' ')
    throw new UsageError(parsed.positionals.length > positionals.length
      ? `unexpected argument ${JSON.stringify(parsed.positionals[positionals.length])} (expected ${want})`
      : `missing ${positionals.slice(parsed.positionals.length).join(' ')}`)
  }
  return { values, positionals: parsed.positionals }
}

const help = { help: { type: 'boolean', short: 'h' } } as const

/** A flag value that must be a whole number; range checks are the schema's. */
function wholeNumber (flag: string, v: string): number {
  if (!/^[0-9]{1,15}$/.test(v)) throw new UsageError(`${flag} must be a whole number, got ${JSON.stringify(v)}`)
  return Number(v)
}

const FLAG_OF: Record<string, string> = {
  rate_limit: '--rate-limit', burst: '--burst', window_seconds: '--window-seconds', expires_at: '--expires-at', name: '--name', allowed_routes: '--route'
}
/** Names schema problems after the flag the user typed rather than the JSON field. */
function inFlagTerms (problem: string): string {
  return problem.replace(/^([a-z_]+)(\[\d+\])?:/, (all, field: string) => FLAG_OF[field] !== undefined ? `${FLAG_OF[field]}:` : all)
}

async function create (args: string[], io: CliIo): Promise<number> {
  const { values: v } = parse(args, {
    ...help,
    'rate-limit': { type: 'string' },
    burst: { type: 'string' },
    'window-seconds': { type: 'string' },
    'expires-at': { type: 'string' },
    ttl: { type: 'string' },
    route: { type: 'string', multiple: true },
    name: { type: 'string' }
  }, [])
  if (v.help === true) { io.stdout.write(COMMAND_HELP.create ?? ''); return 0 }
  const str = (k: string): string | undefined => typeof v[k] === 'string' ? v[k] : undefined
  const rate = str('rate-limit')
  if (rate === undefined) throw new UsageError('--rate-limit N is required')
  const routes = Array.isArray(v.route) ? v.route : []
  if (routes.length === 0) throw new UsageError('at least one --route PATTERN is required')
  const expiresAt = str('expires-at')
  const ttl = str('ttl')
  if (expiresAt !== undefined && ttl !== undefined) throw new UsageError('give --expires-at or --ttl, not both')
  const now = Date.now()
  const input: Record<string, unknown> = { rate_limit: wholeNumber('--rate-limit', rate), allowed_routes: routes }
  const burst = str('burst')
  if (burst !== undefined) input.burst = wholeNumber('--burst', burst)
  const window = str('window-seconds')
  if (window !== undefined) input.window_seconds = wholeNumber('--window-seconds', window)
  if (expiresAt !== undefined) input.expires_at = expiresAt
  if (ttl !== undefined) {
    const ms = parseTtl(ttl)
    if (ms === null) throw new UsageError(`--ttl must be a whole number and one unit of s, m, h or d (e.g. 30d), got ${JSON.stringify(ttl)}`)
    input.expires_at = formatRfc3339(BigInt(now + ms) * 1000n)
  }
  const name = str('name')
  if (name !== undefined) input.name = name
  const checked = validateTokenInput(input, now)
  if (!checked.ok) throw new UsageError(checked.problems.map(inFlagTerms).join('; '))
  return await withStore(io, async (store) => {
    io.stdout.write(JSON.stringify(await store.create(input, now), null, 2) + '\n')
    return 0
  })
}

/** The text of FILE, or of stdin for `-`. */
async function readSource (source: string, io: CliIo): Promise<string> {
  if (source !== '-') {
    try {
      return await readFile(source, 'utf8')
    } catch (err) {
      throw new UsageError(`cannot read ${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  const chunks: Buffer[] = []
  for await (const c of io.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : c)
  return Buffer.concat(chunks).toString('utf8')
}

/** JSON.parse whose error names the place, never quoting the input (it holds api keys). */
function parseJson (text: string, source: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    const pos = /position (\d+)/.exec(String((err as Error).message))
    let where = ''
    if (pos !== null) {
      const before = text.slice(0, Number(pos[1])).split('\n')
      where = ` at line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`
    } else if (text.trim() === '') {
      where = ': it is empty'
    }
    throw new UsageError(`${source === '-' ? 'stdin' : source} is not valid JSON${where}`)
  }
}

async function importCommand (args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, help, ['FILE'])
  if (values.help === true) { io.stdout.write(COMMAND_HELP.import ?? ''); return 0 }
  const source = positionals[0] as string
  const data = parseJson(await readSource(source, io), source)
  const checked = validateImportList(data)
  if (!checked.ok) throw new TokenInputError(checked.problems)
  return await withStore(io, async (store) => {
    const ids = await store.importRecords(data)
    io.stdout.write(ids.map((id) => id + '\n').join(''))
    return 0
  })
}

/**
 * Runs `fn` with a store on the configured Redis, after saying on stderr which one (password
 * masked) and under which key prefix; fails fast (exit 1) when Redis is unreachable.
 */
async function withStore (io: CliIo, fn: (store: TokenStore, client: RedisClient, config: Config, target: string) => Promise<number>): Promise<number> {
  const config = loadConfig(process.env, { requireRoutes: false, dotenv: true })
  const target = redisTarget(config)
  io.stderr.write(`portcullis: Redis ${target}, key prefix ${JSON.stringify(config.redisKeyPrefix)}\n`)
  const client = createRedisClient(config, { commandTimeoutMs: CLI_COMMAND_TIMEOUT_MS, connectionName: 'portcullis-cli' })
  // Errors are reported once, below; without a listener ioredis prints each retry on stderr.
  client.on('error', () => {})
  try {
    try {
      await waitUntilReady(client, CLI_CONNECT_TIMEOUT_MS)
    } catch (err) {
      throw new RuntimeError(`cannot reach Redis at ${target}: ${(err as Error).message}`)
    }
    return await fn(new TokenStore(client, config.redisKeyPrefix, { defaultWindowSeconds: config.rateLimitWindowSeconds }), client, config, target)
  } finally {
    if (client.status === 'ready') await client.quit().catch(() => client.disconnect())
    else client.disconnect()
  }
}

/** How many keys the database holds: for a single node; a Cluster has no cheap total (null). */
async function databaseSize (client: RedisClient): Promise<number | null> {
  return client instanceof Cluster ? null : await client.dbsize()
}

/** `tokens list`: the tokens on stdout; on stderr their count, so "none" and "the wrong Redis" differ. */
async function list (store: TokenStore, client: RedisClient, config: Config, target: string, io: CliIo): Promise<number> {
  const tokens = await store.list()
  io.stdout.write(tokens.map((t) => JSON.stringify(t) + '\n').join(''))
  const size = tokens.length === 0 ? await databaseSize(client) : null
  const note = size === null ? '' : size === 0 ? '; the database is empty' : `; the database holds ${size} other key${size === 1 ? '' : 's'}`
  io.stderr.write(`portcullis: ${tokens.length} token${tokens.length === 1 ? '' : 's'} under prefix ${JSON.stringify(config.redisKeyPrefix)} at ${target}${note}\n`)
  return 0
}

const COMMANDS = ['create', 'import', 'list', 'show', 'revoke']

/** `portcullis tokens <subcommand> …`; returns the exit code or throws UsageError/RuntimeError. */
export async function tokensCommand (args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args
  switch (sub) {
    case 'create': return await create(rest, io)
    case 'import': return await importCommand(rest, io)
    case 'list': {
      if (parse(rest, help, []).values.help === true) { io.stdout.write(COMMAND_HELP.list ?? ''); return 0 }
      return await withStore(io, async (store, client, config, target) => await list(store, client, config, target, io))
    }
    case 'show': {
      const { values, positionals } = parse(rest, help, ['ID'])
      if (values.help === true) { io.stdout.write(COMMAND_HELP.show ?? ''); return 0 }
      // Not echoed: a key given by mistake must not reach a terminal log.
      if (!looksLikeTokenId(positionals[0] as string)) throw new UsageError(`ID must be a token id: ${TOKEN_ID_SHAPE}`)
      return await withStore(io, async (store) => {
        const t = await store.show(positionals[0] as string)
        if (t === null) throw new RuntimeError('no token with that id')
        io.stdout.write(JSON.stringify(t, null, 2) + '\n')
        return 0
      })
    }
    case 'revoke': {
      const { values, positionals } = parse(rest, help, ['ID_OR_KEY'])
      if (values.help === true) { io.stdout.write(COMMAND_HELP.revoke ?? ''); return 0 }
      return await withStore(io, async (store) => {
        // The argument may be a plain api key: it is never echoed.
        if (!await store.revoke(positionals[0] as string)) throw new RuntimeError('no token with that id or key')
        io.stdout.write('revoked\n')
        return 0
      })
    }
    case '--help': case '-h': case 'help': case undefined:
      (sub === undefined ? io.stderr : io.stdout).write(TOKENS_USAGE)
      return sub === undefined ? 2 : 0
    default: {
      const guess = nearest(sub, COMMANDS)
      throw new UsageError(`unknown tokens command ${JSON.stringify(sub)} (${guess === null ? COMMANDS.join(', ') : `did you mean ${guess}?`})`)
    }
  }
}
