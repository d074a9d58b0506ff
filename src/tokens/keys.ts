// The Redis key layout of tokens, its one home (docs/tokens.md): P{digest}:token (the record
// HASH), P{digest}:gcra (limiter state, written only by src/lib/gcra.lua) and P tokens (the
// id → digest index HASH). The digest in braces is the Cluster hash tag, so a token's record and
// limiter share a slot and the script's keys never cross slots; the index lives in another slot.
import { hash } from 'node:crypto'

const DIGEST = /^[0-9a-f]{64}$/

/** Lowercase hex SHA-256 of an API key: the only form in which a key is stored. */
export function digestApiKey (key: string): string {
  // One-shot hash (Node ≥ 20.12): this runs on every proxied request.
  return hash('sha256', key, 'hex')
}

/** Redis key of a token's record hash; the `{digest}` hash tag keeps a token's keys in one slot. */
export function tokenRecordKey (prefix: string, digest: string): string {
  return `${prefix}{${digest}}:token`
}

/** Redis key of a token's limiter state (written only by the rate-limit script). */
export function tokenLimiterKey (prefix: string, digest: string): string {
  return `${prefix}{${digest}}:gcra`
}

/** Redis key of the id → digest index used by list, show and revoke (a different slot). */
export function tokenIndexKey (prefix: string): string {
  return `${prefix}tokens`
}

/** Record and limiter key of one token (one hash tag), as the per-request scripts take them. */
export function tokenKeys (prefix: string, digest: string): { record: string, limiter: string } {
  // Refusing anything but a digest keeps a plain API key from ever becoming part of a key name.
  if (!DIGEST.test(digest)) throw new TypeError('tokenKeys expects a lowercase hex SHA-256 digest')
  return { record: tokenRecordKey(prefix, digest), limiter: tokenLimiterKey(prefix, digest) }
}
