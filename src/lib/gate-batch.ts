/**
 * The batched call of src/lib/gcra.lua: the checks of one event-loop tick (per Cluster slot) go
 * to Redis as one script call, one command however many requests share it. Pure: encoding of the
 * keys and arguments, and a strict decoding of the reply.
 */
import { GCRA_COMMAND, decodeGateReply, type GateResult } from './gcra.js'

/** Checks per script call at most: bounds how long one call holds Redis (a few µs per check). */
export const MAX_GATE_BATCH = 256

/**
 * How long before the command timeout a call's deadline lies (ms): the reply of a call that ran
 * just in time still has to travel back and be read before the gateway's timer fires, through an
 * event loop that may lag. A fifth of the timeout, at least 10 ms, at most half of it.
 */
export function deadlineMarginMs (commandTimeoutMs: number): number {
  return Math.min(Math.floor(commandTimeoutMs / 2), Math.max(10, Math.round(commandTimeoutMs / 5)))
}

/** One request's check as the gate queues it. */
export interface GateCheck {
  /** The token's record and limiter keys (src/tokens/keys.ts tokenKeys: one hash tag). */
  record: string
  limiter: string
  /** The routes revision the caller has compiled for this token ('' for none). */
  routesRev: string
  /** Emission intervals this request spends (1 for a request). */
  cost: number
}

/** KEYS and ARGV of one script call (numkeys = keys.length). */
export interface EncodedBatch { keys: string[], args: Array<string | number> }

/** The decoded reply of one call. */
export type BatchReply =
  /** Redis ran the call after its deadline and wrote nothing. */
  | { now: number, late: true }
  /** One result per check, in order; an Error for a check whose own reply is malformed. */
  | { now: number, late: false, results: Array<GateResult | Error> }

/**
 * KEYS = record and limiter of each check; ARGV = default window, deadline (Redis µs, '' for
 * none), then cost and routes revision of each check.
 */
export function encodeGateBatch (defaultWindow: number, deadlineUs: number | null, checks: readonly GateCheck[]): EncodedBatch {
  if (checks.length === 0) throw new RangeError('a gate batch needs at least one check')
  const keys: string[] = []
  const args: Array<string | number> = [defaultWindow, deadlineUs === null ? '' : Math.floor(deadlineUs)]
  for (const c of checks) {
    keys.push(c.record, c.limiter)
    args.push(c.cost, c.routesRev)
  }
  return { keys, args }
}

function malformed (raw: unknown, why: string): Error {
  let shown: string
  try { shown = JSON.stringify(raw) ?? String(raw) } catch { shown = String(raw) }
  return new Error(`malformed ${GCRA_COMMAND} batch reply (${why}): ${shown.slice(0, 200)}`)
}

/**
 * Decodes the reply to a call made for `routesRevs` (each check's revision, in order). Throws when
 * the reply as a whole cannot be read (every check of the call is then a 503); a malformed reply
 * of one check, or a record the script refused, becomes an Error for that check alone.
 */
export function decodeGateBatch (raw: unknown, routesRevs: readonly string[]): BatchReply {
  // A reply we cannot read must surface as an error (503), never as a decision (401 or a pass).
  if (!Array.isArray(raw) || raw.length < 2) throw malformed(raw, 'not an array of at least 2 elements')
  const [now, late] = raw as unknown[]
  if (typeof now !== 'number' || !Number.isSafeInteger(now) || now <= 0) throw malformed(raw, 'Redis time is not a positive integer')
  if (late === 1) {
    if (raw.length !== 2) throw malformed(raw, 'a late reply carries no results')
    return { now, late: true }
  }
  if (late !== 0) throw malformed(raw, 'the late flag is neither 0 nor 1')
  if (raw.length !== routesRevs.length + 2) throw malformed(raw, `expected ${routesRevs.length} results`)
  const results = routesRevs.map((rev, i): GateResult | Error => {
    const item: unknown = raw[i + 2]
    // The script's refusal of a corrupt record, for this check only.
    if (Array.isArray(item) && item.length === 2 && item[0] === 4 && typeof item[1] === 'string') return new Error(item[1])
    try {
      return decodeGateReply(item, rev)
    } catch (err) {
      return err as Error
    }
  })
  return { now, late: false, results }
}
