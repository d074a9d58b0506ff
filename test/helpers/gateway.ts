import type { FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import { buildApp, type BuildOptions } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/lib/config.js'

/** Log lines captured from an app, parsed from pino's JSON. */
export class LogCapture extends Writable {
  readonly lines: string[] = []
  override _write (chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const l of chunk.toString('utf8').split('\n')) if (l !== '') this.lines.push(l)
    done()
  }

  /** Every captured line as parsed JSON. */
  records (): Array<Record<string, unknown>> { return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

/** A config as the environment would give it: `env` on top of a quiet test baseline. */
export function testConfig (env: Record<string, string>): Config {
  return loadConfig({ LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1', ...env }, { requireRoutes: true })
}

export interface TestGateway {
  app: FastifyInstance
  url: string
  logs: LogCapture
  config: Config
  /** The management listener's base URL when MANAGEMENT_PORT is set (tests pass '0'), else null. */
  managementUrl: string | null
}

/** Builds the app exactly like production and listens on a free loopback port. */
export async function startGateway (env: Record<string, string>, build: Pick<BuildOptions, 'idleTimeoutMs'> = {}): Promise<TestGateway> {
  const config = testConfig(env)
  const logs = new LogCapture()
  const app = await buildApp(config, { ...build, logStream: logs })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const addr = app.server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  const scheme = config.tls === null ? 'http' : 'https'
  const management = await app.management.listen()
  const managementUrl = management === null ? null : `http://127.0.0.1:${management.port}`
  return { app, url: `${scheme}://127.0.0.1:${addr.port}`, logs, config, managementUrl }
}

/**
 * Settings for tests of forwarding (not of load shedding) on a busy 2-core machine running test
 * files in parallel: a slow Redis reply is not a 503, and event-loop delay does not shed requests.
 */
export const CALM: Record<string, string> = { REDIS_COMMAND_TIMEOUT_MS: '5000', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' }
