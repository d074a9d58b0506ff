// Compiled allowed_routes per token, tagged with the record's routes revision (`routes_rev`). The
// gateway sends the revision it holds with each script call; the script sends the routes text back
// only when the stored revision differs, so a hit costs no routes on the wire and no compile, and
// an edit still shows on the very next request (the script compares against the record each time).
import { FifoMap } from 'toad-cache'
import { compiledRoutes, compileRoutesJson, type RouteMatcher } from './route-patterns.js'

/** Upper bound on cached tokens; the entry written longest ago is evicted first. */
export const MATCHER_CACHE_MAX = 10_000

/** One token's compiled routes and the revision they were compiled from. */
export interface CompiledRevision {
  readonly rev: string
  readonly matcher: RouteMatcher
}

/**
 * Key digest → { rev, matcher }, bounded. A caller reads the entry before its script call, passes
 * `rev`, and keeps the entry itself for the reply: an eviction between call and reply then cannot
 * leave an "unchanged" reply without its matcher.
 */
export class MatcherCache {
  private readonly entries: FifoMap<CompiledRevision>
  private compiled = 0

  constructor (readonly max: number = MATCHER_CACHE_MAX) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('MatcherCache max must be a whole number >= 1')
    this.entries = new FifoMap(max)
  }

  /** What this gateway holds for a token digest, if anything. */
  get (digest: string): CompiledRevision | undefined {
    return this.entries.get(digest)
  }

  /**
   * The matcher for a gate reply to a call made with `held?.rev`: `routes` is the JSON text
   * (compiled, and cached under `rev` when there is one) or null for "unchanged". Null when the
   * reply says unchanged but `held` is not that revision: the caller must fail closed.
   */
  resolve (digest: string, held: CompiledRevision | undefined, routes: string | null, rev: string): RouteMatcher | null {
    if (routes === null) return rev !== '' && held?.rev === rev ? held.matcher : null
    // Deleting first also moves a recompiled token to the young end of the eviction order.
    this.entries.delete(digest)
    // A record written before routes_rev existed sends its text every time: the text-keyed cache
    // keeps that as cheap as it was, and there is no revision to file it under here.
    if (rev === '') return compiledRoutes(routes)
    const matcher = compileRoutesJson(routes)
    this.compiled++
    // Full: the FIFO map evicts the entry written longest ago.
    this.entries.set(digest, { rev, matcher })
    return matcher
  }

  /** Number of cached tokens. */
  get size (): number {
    return this.entries.size
  }

  /** How many routes texts with a revision were compiled (each one a reply that carried them). */
  get compiles (): number {
    return this.compiled
  }
}
