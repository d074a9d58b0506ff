/**
 * A request's logger that becomes a real child logger only when something is logged at or above
 * its level. Fastify makes a child logger for every request; a child with its own level (the
 * proxy route's `error`, which silences reply-from's per-request warnings) costs about 1 µs in
 * pino: bindings serialised, every log method rebuilt (docs/performance.md). Most proxied
 * requests never log through it: the request line is written by plugins/request-log.ts.
 * Pure: it knows nothing of Fastify or pino beyond the logger interface.
 */

/** The logger interface Fastify requires of a request's logger. */
export interface RequestLogger {
  level: string
  trace: (...args: unknown[]) => void
  debug: (...args: unknown[]) => void
  info: (...args: unknown[]) => void
  warn: (...args: unknown[]) => void
  error: (...args: unknown[]) => void
  fatal: (...args: unknown[]) => void
  silent: (...args: unknown[]) => void
  child: (bindings: Record<string, unknown>, options?: Record<string, unknown>) => RequestLogger
}

/** The standard level values (pino's): a call below the threshold is dropped without a child. */
const VALUES = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const
type Method = keyof typeof VALUES

/** What the parent is asked for: its child with the request's bindings and options, once. */
export class LazyChildLogger implements RequestLogger {
  readonly #parent: RequestLogger
  readonly #bindings: Record<string, unknown>
  readonly #options: Record<string, unknown>
  readonly #threshold: number
  #child: RequestLogger | null = null

  /** `options.level` must be one of the standard levels; the parent's level still applies to what passes. */
  constructor (parent: RequestLogger, bindings: Record<string, unknown>, options: { level: Method | 'silent' } & Record<string, unknown>) {
    this.#parent = parent
    this.#bindings = bindings
    this.#options = options
    this.#threshold = options.level === 'silent' ? Infinity : VALUES[options.level]
  }

  get level (): string {
    return this.#options.level as string
  }

  set level (level: string) {
    // A level set on the request's logger is the real child's business from then on.
    this.#real().level = level
  }

  #real (): RequestLogger {
    if (this.#child === null) this.#child = this.#parent.child(this.#bindings, this.#options)
    return this.#child
  }

  #log (method: Method, args: unknown[]): void {
    if (this.#child !== null) { this.#child[method](...args); return }
    if (VALUES[method] < this.#threshold) return
    this.#real()[method](...args)
  }

  trace (...args: unknown[]): void { this.#log('trace', args) }
  debug (...args: unknown[]): void { this.#log('debug', args) }
  info (...args: unknown[]): void { this.#log('info', args) }
  warn (...args: unknown[]): void { this.#log('warn', args) }
  error (...args: unknown[]): void { this.#log('error', args) }
  fatal (...args: unknown[]): void { this.#log('fatal', args) }
  silent (): void {}

  child (bindings: Record<string, unknown>, options?: Record<string, unknown>): RequestLogger {
    return this.#real().child(bindings, options)
  }

  /** Whether a line at `level` would be written (pino's isLevelEnabled, for callers that ask). */
  isLevelEnabled (level: string): boolean {
    const real = this.#child as (RequestLogger & { isLevelEnabled?: (l: string) => boolean }) | null
    if (real?.isLevelEnabled !== undefined) return real.isLevelEnabled(level)
    const v = (VALUES as Record<string, number>)[level]
    return v !== undefined && v >= this.#threshold
  }
}
