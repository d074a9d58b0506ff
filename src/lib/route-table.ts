// Longest-prefix routing on whole path segments (docs/configuration.md). Runs on every request, so
// match() probes a Map with the path's own segment prefixes instead of scanning or using regexes.

export interface RouteConfig {
  prefix: string
  upstream: string
  timeoutMs: number
  /** Overrides CIRCUIT_FAILURE_THRESHOLD for this route (JSON ROUTES only); absent = the default. */
  circuitFailureThreshold?: number
  /** Overrides CIRCUIT_COOLDOWN_MS for this route (JSON ROUTES only); absent = the default. */
  circuitCooldownMs?: number
}

/** Routes a normalised path to the route whose prefix matches on whole segments; longest prefix wins. */
export class RouteTable {
  readonly routes: readonly RouteConfig[]
  readonly #byPrefix = new Map<string, RouteConfig>()
  readonly #root: RouteConfig | undefined
  readonly #longest: number

  constructor (routes: readonly RouteConfig[]) {
    this.routes = Object.freeze([...routes])
    let longest = 0
    for (const route of routes) {
      const key = prefixKey(route.prefix)
      if (this.#byPrefix.has(key)) {
        throw new Error(`duplicate route prefix ${JSON.stringify(route.prefix)}`)
      }
      this.#byPrefix.set(key, route)
      longest = Math.max(longest, key.length)
    }
    this.#root = this.#byPrefix.get('/')
    this.#longest = longest
  }

  /** Returns the route for a normalised path, or undefined when no prefix covers it. */
  match (path: string): RouteConfig | undefined {
    // Candidates are the path itself and every prefix ending just before a `/`; ones longer than
    // the longest configured prefix cannot match, so skip them without slicing.
    let end = path.length
    while (end > this.#longest) end = path.lastIndexOf('/', end - 1)
    while (end > 0) {
      const route = this.#byPrefix.get(end === path.length ? path : path.slice(0, end))
      if (route !== undefined) return route
      end = path.lastIndexOf('/', end - 1)
    }
    return this.#root
  }
}

/** `/api/` and `/api` name the same prefix; the root stays `/` so it only ever matches last. */
function prefixKey (prefix: string): string {
  if (!prefix.startsWith('/')) {
    throw new Error(`route prefix ${JSON.stringify(prefix)} must start with "/"`)
  }
  let end = prefix.length
  while (end > 1 && prefix.charCodeAt(end - 1) === 0x2f) end--
  return end === 1 ? '/' : prefix.slice(0, end)
}
