import fp from 'fastify-plugin'
import { Cluster } from 'ioredis'
import calculateSlot from 'cluster-key-slot'
import { FifoMap } from 'toad-cache'
import { GCRA_COMMAND, GCRA_SCRIPT, type GateResult } from '../src/lib/gcra.js'
import { tokenKeys } from '../src/tokens/keys.js'
import { MAX_GATE_BATCH, decodeGateBatch, deadlineMarginMs, encodeGateBatch, type GateCheck } from '../src/lib/gate-batch.js'
import { RedisClock } from '../src/lib/redis-clock.js'
import { storeUnavailable } from '../src/lib/errors.js'
import type { RedisClient } from '../src/redis-client.js'

/** This plugin's name: the plugins that call `app.gate` list it in their `dependencies`. */
export const GATE_PLUGIN = 'portcullis-gate'

/** The hot path's only Redis command, seen from one request. */
export interface Gate {
  /**
   * Token record + GCRA decision for one request. `routesRev` is the routes revision the caller
   * has compiled for this token ('' for none): the result then carries the routes only when the
   * stored revision differs. Rejects with STORE_UNAVAILABLE (503) on any Redis failure.
   */
  check: (digest: string, routesRev?: string) => Promise<GateResult>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The gate (plugins/gate.ts): token check and rate-limit decision in one script call. */
    gate: Gate
  }
}

interface Pending extends GateCheck {
  resolve: (r: GateResult) => void
  reject: (err: Error) => void
}

/** One slot's queue (a single node has one, slot 0). */
interface SlotState {
  readonly slot: number
  /** Checks waiting for this slot's next call (none: not in the queued list). */
  checks: Pending[]
  /** When this slot's call still out was sent (performance.now()), NONE_OUT when none is. */
  outSince: number
}

/** `outSince` of a slot with no call out: `now - NONE_OUT` is never below GATE_HOLD_MS. */
const NONE_OUT = -Infinity

type GateCommand = (numberOfKeys: number, ...keysAndArgs: Array<string | number>) => Promise<unknown>

/** Gateway clock in µs: monotonic (the Redis clock offset absorbs its origin). */
const gatewayUs = (): number => (performance.timeOrigin + performance.now()) * 1000

const SINGLE_NODE = 'main'
/**
 * How long (ms) a slot's new checks may wait for the reply to its call still out before they go
 * out in a call of their own: longer than a healthy Redis round trip under load, short next to
 * any timeout.
 */
export const GATE_HOLD_MS = 2
/** How many tokens' key names the gate keeps (a FIFO). */
const KEY_CACHE_SIZE = 1024

/**
 * The gate: the one owner of src/lib/gcra.lua. Checks issued in one event-loop tick are coalesced
 * into one script call (per Cluster slot: a script stays in one slot), flushed by setImmediate so
 * every request parsed in this I/O phase joins. Each call carries a deadline in Redis time, just
 * before the moment the gateway gives up on it (REDIS_COMMAND_TIMEOUT_MS): a call that waited in a
 * stalled Redis past it writes nothing, so a request answered 503 never spends quota.
 * `defineCommand` sends EVALSHA and falls back to EVAL on NOSCRIPT, so a Redis restart or SCRIPT
 * FLUSH heals by itself. Any Redis failure is a 503, never a pass.
 */
export default fp(async function gatePlugin (app) {
  const client = app.redis as RedisClient // @fastify/redis types it as single-node; it may be a Cluster (src/redis-client.ts)
  // No numberOfKeys: a call carries 2 keys per check. The client leaves this command out of its
  // auto-pipelining (src/redis-client.ts), which would take the slot from the key count.
  client.defineCommand(GCRA_COMMAND, { lua: GCRA_SCRIPT })
  const run = (client as unknown as Record<string, GateCommand>)[GCRA_COMMAND] as GateCommand
  const { redisKeyPrefix: prefix, rateLimitWindowSeconds: defaultWindow, redisCommandTimeoutMs: timeoutMs } = app.config
  // The deadline lies this far before the command timeout: the reply of a call that ran just in
  // time must still reach the gateway before its timer fires.
  const budgetUs = (timeoutMs - deadlineMarginMs(timeoutMs)) * 1000
  const cluster = client instanceof Cluster ? client : null
  const clock = new RedisClock()

  /** The server whose clock a slot's calls read (one per Cluster master). */
  const nodeOf = (slot: number): string => cluster === null ? SINGLE_NODE : cluster.slots[slot]?.[0] ?? 'unknown'

  // Learn each server's clock before the first request, so even it carries a deadline.
  const probing = new Set<string>()
  async function probe (node: string, server: { time: () => Promise<unknown[]> }): Promise<void> {
    if (probing.has(node)) return
    probing.add(node)
    try {
      const [s, us] = await server.time()
      const redisUs = Number(s) * 1e6 + Number(us)
      if (Number.isSafeInteger(redisUs)) clock.observe(node, redisUs, gatewayUs())
    } catch {
      // Unreachable now: the first reply teaches the clock instead.
    } finally {
      probing.delete(node)
    }
  }
  async function probeAll (): Promise<void> {
    if (cluster === null) return await probe(SINGLE_NODE, client)
    await Promise.all(cluster.nodes('master').map(async (n) => await probe(`${n.options.host}:${n.options.port}`, n)))
  }
  // A reconnection may reach another server (failover): its clock is learnt again.
  const onReady = (): void => {
    clock.forget()
    probeAll().catch(() => {})
  }
  client.on('ready', onReady)
  app.addHook('onClose', async () => { client.off('ready', onReady) })
  app.addHook('onReady', async () => { if (client.status === 'ready') await probeAll() })

  // Per slot (0 on a single node): its queued checks and when its call still out was sent
  // (performance.now(), NONE_OUT when none is). Entries stay once made, at most one per Cluster
  // slot: a Map deletion per call would give the long-lived map a new table each time, and those
  // tables fill the old generation under load (docs/performance.md, "Garbage").
  const slots = new Map<number, SlotState>()
  // The slots with queued checks, each once, in the order they got their first.
  let queued: SlotState[] = []
  // The key names of the tokens seen lately (two strings built and a digest checked otherwise).
  const keysOf = new FifoMap<{ record: string, limiter: string }>(KEY_CACHE_SIZE, 0)
  let scheduled = false
  let holdTimer: NodeJS.Timeout | null = null

  function fail (batch: readonly Pending[], cause: unknown): void {
    for (const p of batch) {
      // Refused, timed out, or a reply we cannot read: all the same to a client, a 503 (counted
      // as an auth and a rate-limit decision in onResponse from its code, plugins/metrics.ts).
      p.reject(Object.assign(storeUnavailable(), { cause }))
    }
  }

  async function send (state: SlotState, batch: Pending[]): Promise<void> {
    const sent = performance.now()
    state.outSince = sent
    try {
      await call(state.slot, batch)
    } finally {
      // The slot's checks that waited for this call go out now (with those of this turn).
      if (state.outSince === sent) state.outSince = NONE_OUT
      if (state.checks.length > 0) schedule()
    }
  }

  async function call (slot: number, batch: Pending[]): Promise<void> {
    const node = nodeOf(slot)
    const sentUs = gatewayUs()
    const deadline = clock.toRedis(node, sentUs + budgetUs)
    if (deadline === null && cluster !== null && node !== 'unknown') {
      const server = cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === node)
      if (server !== undefined) probe(node, server).catch(() => {})
    }
    const started = performance.now()
    let reply
    let order: number[]
    try {
      const encoded = encodeGateBatch(defaultWindow, deadline, batch)
      order = encoded.order
      const raw = await run.call(client, encoded.keys.length, ...encoded.keys, ...encoded.args)
      reply = decodeGateBatch(raw, order.map((i) => (batch[i] as Pending).routesRev))
      // Every reply re-teaches the clock: drift and steps are followed continuously.
      clock.observe(node, reply.now, gatewayUs())
    } catch (err) {
      app.metrics.observeRedis((performance.now() - started) / 1000, false)
      return fail(batch, err)
    }
    app.metrics.observeRedis((performance.now() - started) / 1000, true)
    if (reply.late) return fail(batch, new Error('the gate script ran after its deadline and wrote nothing'))
    // The reply lists the checks group by group (src/lib/gate-batch.ts): `order` maps them back.
    reply.results.forEach((r, k) => {
      const p = batch[order[k] as number] as Pending
      if (r instanceof Error) fail([p], r)
      else p.resolve(r)
    })
  }

  function schedule (): void {
    if (scheduled) return
    scheduled = true
    setImmediate(flush)
  }

  /**
   * Sends each slot's queued checks as one call, unless a call of that slot is still out and was
   * sent less than GATE_HOLD_MS ago: then they wait for its reply (or that bound) and go out
   * together with every check queued meanwhile. Under load this makes the calls fewer and larger
   * (one per round trip instead of one per event-loop turn); an idle gateway sends at once; a
   * stalled Redis delays a check by at most GATE_HOLD_MS before its own call goes out.
   */
  function flush (): void {
    scheduled = false
    const now = performance.now()
    let holdUntil = Infinity
    const ready = queued
    queued = []
    for (const state of ready) {
      if (now - state.outSince < GATE_HOLD_MS) {
        holdUntil = Math.min(holdUntil, state.outSince + GATE_HOLD_MS)
        queued.push(state) // still queued: it goes with a later flush
        continue
      }
      const all = state.checks
      state.checks = []
      for (let i = 0; i < all.length; i += MAX_GATE_BATCH) send(state, all.length <= MAX_GATE_BATCH ? all : all.slice(i, i + MAX_GATE_BATCH)).catch((err: unknown) => { app.log.error({ err }, 'gate batch failed') })
    }
    if (holdUntil === Infinity) {
      // Nothing held: a bound left armed would still wake an idle event loop when it runs out.
      if (holdTimer !== null) { clearTimeout(holdTimer); holdTimer = null }
    } else if (holdTimer === null) {
      holdTimer = setTimeout(() => { holdTimer = null; schedule() }, Math.max(0, holdUntil - now))
    }
  }
  app.addHook('onClose', async () => { if (holdTimer !== null) clearTimeout(holdTimer) })

  app.decorate<Gate>('gate', {
    async check (digest: string, routesRev = ''): Promise<GateResult> {
      let keys = keysOf.get(digest)
      if (keys === undefined) keysOf.set(digest, keys = tokenKeys(prefix, digest))
      const { record, limiter } = keys
      return await new Promise<GateResult>((resolve, reject) => {
        const check: Pending = { record, limiter, routesRev, cost: 1, resolve, reject }
        // The keys of a token share one hash tag, so one slot. A single node is one group.
        const slot = cluster === null ? 0 : calculateSlot(record)
        let state = slots.get(slot)
        if (state === undefined) slots.set(slot, state = { slot, checks: [], outSince: NONE_OUT })
        if (state.checks.length === 0) queued.push(state)
        state.checks.push(check)
        // setImmediate, not a microtask: each socket's data is parsed in its own callback, and
        // microtasks run between them; the check phase comes after the whole I/O phase.
        schedule()
      })
    }
  })
}, { name: GATE_PLUGIN, fastify: '5.x', dependencies: ['portcullis-config', 'portcullis-redis', 'portcullis-metrics'] })
