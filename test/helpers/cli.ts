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

/**
 * Points the in-process CLI (which reads the environment) at a Redis and key prefix; returns the
 * function that restores the variables it changed.
 */
export function pointCliAt (redisUrl: string, keyPrefix: string): () => void {
  const names = ['REDIS_URL', 'REDIS_KEY_PREFIX', 'REDIS_CLUSTER_NODES'] as const
  const saved = names.map((k) => [k, process.env[k]] as const)
  process.env.REDIS_URL = redisUrl
  process.env.REDIS_KEY_PREFIX = keyPrefix
  delete process.env.REDIS_CLUSTER_NODES
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}
