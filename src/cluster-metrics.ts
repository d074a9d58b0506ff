/**
 * WORKERS>1: GET /metrics on any worker answers the sum over all workers. The worker asks the
 * primary over IPC; the primary collects every registered worker's metrics as JSON and merges
 * them with prom-client's AggregatorRegistry.aggregate (counters and histograms summed; the
 * default process metrics use prom-client's own aggregators).
 *
 * Own messages instead of prom-client's built-in worker listener: a worker joins the collection
 * only once its app (and so its registry) exists, so a worker still waiting for Redis or one that
 * has closed its app never stalls a scrape on the others.
 */
import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry, type Registry } from 'prom-client'

/** One registry's metrics as `getMetricsAsJSON()` gives them (structured-cloned over IPC). */
type MetricsJson = object[]

const READY = 'portcullis:metrics:ready' // worker → primary: my registry can be collected
const GONE = 'portcullis:metrics:gone' // worker → primary: leave me out from now on
const AGGREGATE = 'portcullis:metrics:aggregate' // worker → primary: please sum every worker
const RESULT = 'portcullis:metrics:result' // primary → worker: the summed text, or an error
const COLLECT = 'portcullis:metrics:collect' // primary → worker: send your metrics as JSON
const COLLECTED = 'portcullis:metrics:collected' // worker → primary: here they are

/** How long one worker may take to hand over its metrics before the scrape fails. */
const COLLECT_TIMEOUT_MS = 2000
/** The worker's wait for the primary's answer; a bit longer than the primary's own. */
const AGGREGATE_TIMEOUT_MS = 3000

interface Message { type?: string, id?: number, text?: string, error?: string, metrics?: MetricsJson }

// With a callback, a send on a channel that just closed reports to it instead of emitting an
// 'error' event that nobody listens to (which would crash the process).
const ignore = (): void => {}

/** Sends to the primary; false when the IPC channel is gone. */
function toPrimary (msg: Message): boolean {
  if (process.send === undefined || !process.connected) return false
  process.send(msg, undefined, undefined, ignore)
  return true
}

function toWorker (worker: Worker, msg: Message): void {
  if (worker.isConnected()) worker.send(msg, undefined, undefined, ignore)
}

/** Starts the primary's side: tracks which workers have metrics and answers their aggregate requests. */
export function startClusterMetrics (): void {
  const members = new Set<number>()
  const pending = new Map<number, (metrics: MetricsJson | Error) => void>()
  let nextId = 0

  const collectOne = async (worker: Worker): Promise<MetricsJson> => {
    const id = nextId++
    return await new Promise<MetricsJson>((resolve, reject) => {
      const timer = setTimeout(() => { settle(new Error(`worker ${worker.id} did not send its metrics within ${COLLECT_TIMEOUT_MS} ms`)) }, COLLECT_TIMEOUT_MS)
      const settle = (result: MetricsJson | Error): void => {
        clearTimeout(timer)
        pending.delete(id)
        if (result instanceof Error) reject(result)
        else resolve(result)
      }
      pending.set(id, settle)
      toWorker(worker, { type: COLLECT, id })
    })
  }

  const aggregate = async (): Promise<string> => {
    const workers = Object.values(cluster.workers ?? {})
      .filter((w): w is Worker => w !== undefined && members.has(w.id) && w.isConnected())
    const all = await Promise.all(workers.map(collectOne))
    return await AggregatorRegistry.aggregate(all).metrics()
  }

  cluster.on('message', (worker: Worker, msg: Message) => {
    switch (msg?.type) {
      case READY: members.add(worker.id); break
      case GONE: members.delete(worker.id); break
      case COLLECTED: pending.get(msg.id ?? -1)?.(msg.metrics ?? []); break
      case AGGREGATE:
        aggregate().then(
          (text) => { toWorker(worker, { type: RESULT, id: msg.id, text }) },
          (err: Error) => { toWorker(worker, { type: RESULT, id: msg.id, error: err.message }) }
        )
        break
    }
  })
  cluster.on('exit', (worker: Worker) => { members.delete(worker.id) })
}

/** Worker side: answers the primary's collect requests from `registry`; returns a detach function. */
export function attachWorkerMetrics (registry: Registry): () => void {
  const onMessage = (msg: Message): void => {
    if (msg?.type !== COLLECT) return
    registry.getMetricsAsJSON().then(
      (metrics) => { toPrimary({ type: COLLECTED, id: msg.id, metrics }) },
      () => { toPrimary({ type: COLLECTED, id: msg.id, metrics: [] }) }
    )
  }
  process.on('message', onMessage)
  toPrimary({ type: READY })
  return () => {
    process.off('message', onMessage)
    toPrimary({ type: GONE })
  }
}

let nextRequest = 0

/** Worker side: the metrics of every worker, summed by the primary (Prometheus text format). */
export async function clusterMetricsText (): Promise<string> {
  const id = nextRequest++
  return await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { done(new Error(`the primary did not aggregate metrics within ${AGGREGATE_TIMEOUT_MS} ms`)) }, AGGREGATE_TIMEOUT_MS)
    const onMessage = (msg: Message): void => {
      if (msg?.type !== RESULT || msg.id !== id) return
      done(msg.error === undefined ? msg.text ?? '' : new Error(`metrics aggregation failed: ${msg.error}`))
    }
    const done = (result: string | Error): void => {
      clearTimeout(timer)
      process.off('message', onMessage)
      if (typeof result === 'string') resolve(result)
      else reject(result)
    }
    process.on('message', onMessage)
    if (!toPrimary({ type: AGGREGATE, id })) done(new Error('no IPC channel to the cluster primary'))
  })
}
