/**
 * Waiting for Redis before a worker listens: one warn at the first failure, naming the target
 * (password masked) and the error, then again after 1 s, 2 s, 4 s … (at most every 30 s), and one
 * info line when it answers. Never gives up: an orchestrator decides how long that may take
 * (docs/operations.md: the startupProbe).
 */
import type { Logger } from 'pino'
import type { RedisClient } from './redis-client.js'

export interface WaitOptions {
  /** The first repeat after the first warning. */
  firstDelayMs?: number
  /** The cap of the doubling delay between warnings. */
  maxDelayMs?: number
}

/** An ioredis connection error as a log field: type, message and code, without a stack (it says nothing here). */
export function connectionError (err: Error | null): Record<string, unknown> | null {
  if (err === null) return null
  const e = err as Error & { code?: string, errors?: Error[] }
  // Node's happy-eyeballs connect (a host with several addresses) fails with an AggregateError
  // whose own message is empty: its parts say what happened.
  const message = e.message !== '' ? e.message : (e.errors ?? []).map((x) => x.message).join('; ')
  return { type: e.name, message, ...(e.code === undefined ? {} : { code: e.code }) }
}

/** Resolves once `client` is ready, logging while it is not. */
export async function waitForRedisAtStart (client: RedisClient, target: string, log: Logger, opts: WaitOptions = {}): Promise<void> {
  if (client.status === 'ready') return
  const { firstDelayMs = 1000, maxDelayMs = 30_000 } = opts
  const started = Date.now()
  let lastError: Error | null = null
  let warnings = 0
  let delay = firstDelayMs
  let timer: NodeJS.Timeout | undefined
  await new Promise<void>((resolve) => {
    const warn = (): void => {
      warnings++
      log.warn({ redis: target, waitedMs: Date.now() - started, nextWarningInMs: delay, err: connectionError(lastError) },
        `cannot reach Redis at ${target}; waiting for it before listening`)
      timer = setTimeout(warn, delay)
      delay = Math.min(delay * 2, maxDelayMs)
    }
    const onError = (err: Error): void => {
      lastError = err
      if (warnings === 0) { clearTimeout(timer); warn() }
    }
    const onReady = (): void => {
      clearTimeout(timer)
      client.off('error', onError)
      client.off('ready', onReady)
      resolve()
    }
    client.on('error', onError)
    client.on('ready', onReady)
    // Neither ready nor an error (a host that drops packets): say so after the first delay too.
    timer = setTimeout(warn, firstDelayMs)
  })
  if (warnings > 0) log.info({ redis: target, waitedMs: Date.now() - started }, `Redis at ${target} is reachable`)
}
