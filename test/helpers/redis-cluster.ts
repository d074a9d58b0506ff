import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, Redis } from 'ioredis'

const run = promisify(execFile)

async function portIsFree (port: number): Promise<boolean> {
  const srv = createServer()
  return await new Promise<boolean>((resolve) => {
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/**
 * A port P where both P and its cluster bus port P + 10000 are free. P in 10000-19999 and the bus
 * in 20000-29999: below the kernel's ephemeral range (32768+), so no port-0 listener or outgoing
 * connection can take either between this check and redis-server's bind.
 */
async function freeClusterPort (taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 10000 + Math.floor(Math.random() * 10000)
    if (taken.has(port)) continue
    if (await portIsFree(port) && await portIsFree(port + 10000)) return port
  }
  throw new Error('no free port pair for a cluster node')
}

async function clusterInfo (port: number): Promise<string> {
  const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  c.on('error', () => {})
  try {
    await c.connect()
    return await c.cluster('INFO')
  } catch {
    return ''
  } finally {
    c.disconnect()
  }
}

/**
 * A real 3-master Redis Cluster (no replicas) of `redis-server` processes on free loopback
 * ports, created with `redis-cli --cluster create`. Ready once every node reports
 * `cluster_state:ok` and knows all three nodes.
 */
export class RedisCluster {
  ports: number[] = []
  private procs: ChildProcess[] = []
  private dir = ''

  /** Starts the three nodes, joins them into one cluster and waits until it serves every slot. */
  async start (timeoutMs = 30_000): Promise<this> {
    this.dir = await mkdtemp(join(tmpdir(), 'portcullis-cluster-'))
    const taken = new Set<number>()
    for (let i = 0; i < 3; i++) {
      const port = await freeClusterPort(taken)
      taken.add(port)
      this.ports.push(port)
    }
    for (const port of this.ports) this.procs.push(this.spawnNode(port))
    const deadline = Date.now() + timeoutMs
    for (const port of this.ports) await this.waitForNode(port, deadline)
    await run('redis-cli', ['--cluster', 'create', ...this.ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', '0', '--cluster-yes'], { timeout: timeoutMs })
    await this.waitUntilOk(deadline)
    return this
  }

  /** Kills one node (SIGKILL); its slots are served by nobody until it is started again. */
  async stopNode (i: number): Promise<void> {
    const proc = this.procs[i]
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const gone = once(proc, 'exit')
    proc.kill('SIGKILL')
    await gone
  }

  /** Starts a stopped node again on its port; it rejoins from its nodes.conf (with no data). */
  async startNode (i: number, timeoutMs = 30_000): Promise<void> {
    const port = this.ports[i]
    if (port === undefined) throw new Error(`no node ${i}`)
    this.procs[i] = this.spawnNode(port)
    await this.waitForNode(port, Date.now() + timeoutMs)
  }

  /** Waits until every node reports `cluster_state:ok`, knows all three nodes and all slots are served. */
  async waitUntilOk (deadline: number): Promise<void> {
    for (const port of this.ports) {
      for (;;) {
        const info = await clusterInfo(port)
        if (info.includes('cluster_state:ok') && info.includes('cluster_known_nodes:3') &&
          info.includes('cluster_slots_ok:16384')) break
        if (Date.now() > deadline) throw new Error(`cluster node ${port} not ok in time:\n${info}`)
        await sleep(100)
      }
    }
  }

  private spawnNode (port: number): ChildProcess {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', join(this.dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000',
      '--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no', '--loglevel', 'warning']
    return spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] })
  }

  private async waitForNode (port: number, deadline: number): Promise<void> {
    const proc = this.procs[this.ports.indexOf(port)]
    while (await clusterInfo(port) === '') {
      if (proc?.exitCode != null) throw new Error(`cluster node ${port} exited with code ${proc.exitCode}`)
      if (Date.now() > deadline) throw new Error(`cluster node ${port} did not start`)
      await sleep(50)
    }
  }

  /** The value of REDIS_CLUSTER_NODES for this cluster. */
  get nodes (): string {
    return this.ports.map((p) => `127.0.0.1:${p}`).join(',')
  }

  /** An ioredis Cluster client for test set-up and assertions; the caller disconnects it. */
  client (): Cluster {
    return new Cluster(this.ports.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: 1 } })
  }

  /** A plain client to each master, e.g. for SCAN, which a Cluster client does not fan out. */
  nodeClients (): Redis[] {
    return this.ports.map((port) => new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 }))
  }

  /** Kills every node (SIGKILL) and removes the temporary folder. */
  async close (): Promise<void> {
    const procs = this.procs
    this.procs = []
    await Promise.all(procs.map(async (proc) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const gone = once(proc, 'exit')
      proc.kill('SIGKILL')
      await gone
    }))
    if (this.dir !== '') await rm(this.dir, { recursive: true, force: true })
  }
}
