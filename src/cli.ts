// `node bin/portcullis.js <command>` (SPEC §4). Exit codes: 0 done, 1 runtime failure (config,
// Redis, not found), 2 bad arguments or input — and then nothing has been written.
import { ConfigError } from './lib/config.js'
import { TokenInputError } from './lib/token.js'
import { tokensCommand, UsageError, RuntimeError, type CliIo } from './cli-tokens.js'

export type { CliIo }

/** Top-level help; each `tokens` subcommand is listed with all its flags. */
export const USAGE = `Usage: portcullis <command>

Commands:
  serve                                   run the gateway (configured by the environment)
  tokens create --rate-limit N [--burst N] [--window-seconds N]
                [--expires-at RFC3339 | --ttl 30d|12h|15m|45s]
                --route PATTERN [--route PATTERN ...] [--name NAME]
                                          create a token; prints it as JSON, with its api_key (shown once)
  tokens import FILE|-                    store tokens from a JSON object or array (- = stdin);
                                          all or nothing; prints their ids
  tokens list                             one JSON line per token, without keys
  tokens show ID                          one token as JSON; exit 1 if there is none
  tokens revoke ID_OR_KEY                 revoke a token by id or by api key; exit 1 if there is none

Route patterns: "/api/v1/users/*" (the path and everything below), "/api/*/users" (* = one
segment), "GET,HEAD /api/v1/users/*" (only these methods; HEAD is not implied by GET).

Redis comes from REDIS_URL / REDIS_CLUSTER_NODES / REDIS_KEY_PREFIX (a .env file is read too).
Exit codes: 0 ok, 1 failure or not found, 2 bad arguments (nothing written).
`

/** Runs one CLI invocation and returns its exit code; never calls process.exit. */
export async function main (
  argv: string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }
): Promise<number> {
  try {
    const [command, ...rest] = argv
    switch (command) {
      case undefined:
        io.stderr.write(USAGE)
        return 2
      case '--help': case '-h': case 'help':
        io.stdout.write(USAGE)
        return 0
      case 'serve': {
        if (rest.includes('--help') || rest.includes('-h')) { io.stdout.write(USAGE); return 0 }
        if (rest.length > 0) throw new UsageError(`serve takes no arguments (got ${JSON.stringify(rest[0])}); configure it with environment variables`)
        const { serve } = await import('./server.js')
        await serve()
        return 0
      }
      case 'tokens':
        return await tokensCommand(rest, io, USAGE)
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (err) {
    return report(err, io)
  }
}

/** Writes the failure on stderr and picks its exit code. */
function report (err: unknown, io: CliIo): number {
  if (err instanceof UsageError) {
    io.stderr.write(`portcullis: ${err.message} (see portcullis --help)\n`)
    return 2
  }
  if (err instanceof TokenInputError) {
    if (err.problems.length === 1) io.stderr.write(`portcullis: ${err.problems[0]}; nothing written\n`)
    else io.stderr.write(`portcullis: ${err.problems.length} problems, nothing written:\n${err.problems.map((p) => `  ${p}\n`).join('')}`)
    return 2
  }
  if (err instanceof ConfigError || err instanceof RuntimeError) {
    io.stderr.write(`portcullis: ${err.message}\n`)
    return 1
  }
  io.stderr.write(`portcullis: ${err instanceof Error ? err.message : String(err)}\n`)
  return 1
}
