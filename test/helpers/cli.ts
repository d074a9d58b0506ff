import { Readable } from 'node:stream'
import { main } from '../../src/cli.js'

/** What one in-process CLI run printed and returned. */
export interface CliRun { code: number, out: string, err: string }

/** Runs the CLI in-process (the same `main` bin/portcullis.js calls) with captured output and an optional stdin text. */
export async function runCli (argv: string[], stdin = ''): Promise<CliRun> {
  let out = ''
  let err = ''
  const code = await main(argv, {
    stdout: { write: (s: string) => { out += s } },
    stderr: { write: (s: string) => { err += s } },
    stdin: Readable.from([Buffer.from(stdin)])
  })
  return { code, out, err }
}
