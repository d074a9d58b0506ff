/**
 * The batched call of src/lib/gcra.lua: the checks of one event-loop tick (per Cluster slot) go
 * to Redis as one script call, one command however many requests share it, grouped by token.
 * Pure: encoding of the keys and arguments, and a strict decoding of the reply.
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

/**
 * KEYS and ARGV of one script call (numkeys = keys.length), and `order`: the index in the checks
 * of each result of the reply (the reply lists the checks group by group).
 */
export interface EncodedBatch { keys: string[], args: Array<string | number>, order: number[] }

/** The decoded reply of one call. */
export type BatchReply =
  /** Redis ran the call after its deadline and wrote nothing. */
  | { now: number, late: true }
  /** One result per check, in order; an Error for a check whose own reply is malformed. */
  | { now: number, late: false, results: Array<GateResult | Error> }

/**
 * The checks grouped by token and routes revision, in the order each group's first check came:
 * KEYS = record and limiter of each group; ARGV = default window, deadline (Redis µs, '' for none),
 * then each group's routes revision and its checks' costs, comma-separated. A token's keys travel
 * once however many of its requests share the call (docs/performance.md, step 3).
 */
export function encodeGateBatch (defaultWindow: number, deadlineUs: number | null, checks: readonly GateCheck[]): EncodedBatch {
  if (checks.length === 0) throw new RangeError('a gate batch needs at least one check')
  // A group is its first check (keys and revision) and the indexes of its checks; `byRecord`
  // finds a token's groups (one per routes revision, nearly always one).
  const byRecord = new Map<string, Array<{ check: GateCheck, members: number[] }>>()
  const groups: Array<{ check: GateCheck, members: number[] }> = []
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i] as GateCheck
    let ofToken = byRecord.get(c.record)
    if (ofToken === undefined) byRecord.set(c.record, ofToken = [])
    let g = ofToken.find((x) => x.check.routesRev === c.routesRev)
    if (g === undefined) {
      g = { check: c, members: [] }
      ofToken.push(g)
      groups.push(g)
    }
    g.members.push(i)
  }
  const keys: string[] = []
  const args: Array<string | number> = [defaultWindow, deadlineUs === null ? '' : Math.floor(deadlineUs)]
  const order: number[] = []
  for (const { check, members } of groups) {
    keys.push(check.record, check.limiter)
    let costs = ''
    for (const i of members) {
      costs += (costs === '' ? '' : ',') + String((checks[i] as GateCheck).cost)
      order.push(i)
    }
    args.push(check.routesRev, costs)
  }
  return { keys, args, order }
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
