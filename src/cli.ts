// `portcullis <command>` (docs/operations.md, the CLI). Exit codes: 0 done, 1 runtime failure (config,
// Redis, not found), 2 bad arguments or input — and then nothing has been written.
import { ConfigError } from './lib/config.js'
import { TokenInputError } from './tokens/validate.js'
import { tokensCommand, UsageError, RuntimeError, type CliIo } from './cli-tokens.js'
import { USAGE } from './cli-help.js'
import { nearest } from './lib/suggest.js'

export type { CliIo }
export { USAGE }

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
        return await tokensCommand(rest, io)
      default: {
        const guess = nearest(command, ['serve', 'tokens'])
        throw new UsageError(`unknown command ${JSON.stringify(command)}${guess === null ? '' : `; did you mean ${guess}?`}`)
      }
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
