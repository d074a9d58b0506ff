// deploy/kubernetes (docs/operations.md): the base and every overlay render with `kubectl kustomize`,
// every object validates against the Kubernetes schemas, and what the manifests say about the gateway
// (env var names, probe paths and ports, shutdown timing) is what the gateway's code says.
import { test, type Test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify from 'fastify'
import { EnvSchema, loadConfig } from '../../src/lib/config.js'
import healthRoutes from '../../routes/health.js'
import metricsRoutes from '../../routes/metrics.js'
import { findKubectl, render, readRaw, validateObject, one, type K8sObject } from '../helpers/manifests.js'

const root = new URL('../..', import.meta.url).pathname
const kube = join(root, 'deploy', 'kubernetes')
const overlays = readdirSync(join(kube, 'overlays'))
const dirs = [join(kube, 'base'), ...overlays.map((o) => join(kube, 'overlays', o))]
const kubectl = findKubectl()
const knownVars = new Set(Object.keys(EnvSchema.properties))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
const PLACEHOLDER_REDIS = 'redis://redis:6379'

/** The GET routes the gateway itself registers for probes and scrapes, from the route modules. */
async function gatewayRoutes (): Promise<(url: string) => boolean> {
  const app = Fastify()
  await app.register(healthRoutes)
  await app.register(metricsRoutes)
  await app.ready()
  return (url) => app.hasRoute({ method: 'GET', url })
}

interface Probe { httpGet?: { path: string, port: string | number, scheme?: string } }
interface Container {
  name: string
  image: string
  ports?: Array<{ name?: string, containerPort: number }>
  env?: Array<{ name: string, value?: string, valueFrom?: { secretKeyRef?: { name: string, key: string }, configMapKeyRef?: { name: string, key: string } } }>
  envFrom?: Array<{ configMapRef?: { name: string }, secretRef?: { name: string } }>
  startupProbe?: Probe
  livenessProbe?: Probe
  readinessProbe?: Probe
  lifecycle?: { preStop?: { exec?: { command: string[] }, sleep?: { seconds: number } } }
  resources?: { requests?: Record<string, string>, limits?: Record<string, string> }
  securityContext?: { allowPrivilegeEscalation?: boolean, readOnlyRootFilesystem?: boolean, capabilities?: { drop?: string[] } }
  volumeMounts?: Array<{ name: string, mountPath: string, readOnly?: boolean }>
}
interface PodSpec {
  automountServiceAccountToken?: boolean
  terminationGracePeriodSeconds?: number
  securityContext?: { runAsNonRoot?: boolean, runAsUser?: number, runAsGroup?: number, fsGroup?: number, seccompProfile?: { type: string } }
  containers: Container[]
  volumes?: Array<{ name: string, secret?: { secretName: string, defaultMode?: number } }>
}
type Deployment = K8sObject & { spec: { replicas: number, selector: { matchLabels: Record<string, string> }, template: { metadata: { labels: Record<string, string> }, spec: PodSpec } } }

const podSpec = (d: K8sObject): PodSpec => (d as Deployment).spec.template.spec
const gateway = (objects: K8sObject[]): Container => {
  const c = podSpec(one(objects, 'Deployment', 'portcullis')).containers.find((x) => x.name === 'gateway')
  if (c === undefined) throw new Error('no gateway container')
  return c
}

/** The gateway's environment as Kubernetes would set it (Secret values replaced by placeholders). */
function gatewayEnv (objects: K8sObject[], c: Container): Record<string, string> {
  const env: Record<string, string> = {}
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef !== undefined) Object.assign(env, one(objects, 'ConfigMap', from.configMapRef.name).data)
  }
  for (const e of c.env ?? []) env[e.name] = e.value ?? (e.name === 'REDIS_URL' ? PLACEHOLDER_REDIS : 'x'.repeat(32))
  return env
}

/** preStop duration in seconds, from `exec: sleep N` or the kubelet's `sleep` handler. */
function preStopSeconds (c: Container): number {
  const h = c.lifecycle?.preStop
  if (h?.sleep !== undefined) return h.sleep.seconds
  const cmd = h?.exec?.command ?? []
  return cmd[0] === 'sleep' ? Number(cmd[1]) : 0
}

function checkGateway (t: Test, objects: K8sObject[], isRoute: (url: string) => boolean): void {
  const deployment = one(objects, 'Deployment', 'portcullis') as Deployment
  const pod = podSpec(deployment)
  const c = gateway(objects)
  t.equal(deployment.spec.replicas, 2, 'two replicas')
  t.equal(c.image.split(':')[0], 'portcullis', 'the image built from the Dockerfile')

  // Every variable the manifests give the gateway is one src/lib/config.ts reads.
  const env = gatewayEnv(objects, c)
  for (const name of Object.keys(env)) t.ok(knownVars.has(name), `${name} is a variable the gateway reads`)
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef
    if (ref !== undefined) t.equal(ref.key, e.name, `${e.name} comes from the Secret key of the same name`)
  }
  t.ok((c.env ?? []).some((e) => e.name === 'REDIS_URL' && e.valueFrom?.secretKeyRef !== undefined), 'REDIS_URL from the Secret')
  t.ok((c.env ?? []).some((e) => e.name === 'ADMIN_TOKEN' && e.valueFrom?.secretKeyRef !== undefined), 'ADMIN_TOKEN from the Secret')
  const config = loadConfig(env) // throws a ConfigError naming the variable if any value is invalid
  t.ok(config.routes.length > 0, 'ROUTES parses')

  // Probes: real GET routes of the gateway, on the port it listens on.
  const port = c.ports?.find((p) => p.name === 'http')
  t.equal(port?.containerPort, config.port, 'the container port "http" is PORT')
  // /metrics, /docs and /admin on their own port, reachable by Prometheus in another pod.
  const management = c.ports?.find((p) => p.name === 'management')
  t.not(config.management, null, 'MANAGEMENT_PORT is set')
  t.equal(management?.containerPort, config.management?.port, 'the container port "management" is MANAGEMENT_PORT')
  t.equal(config.management?.host, '0.0.0.0', 'MANAGEMENT_HOST listens beyond loopback, so Prometheus can scrape it')
  t.equal(c.livenessProbe?.httpGet?.path, '/healthz', 'liveness: /healthz')
  t.equal(c.readinessProbe?.httpGet?.path, '/readyz', 'readiness: /readyz')
  t.equal(c.startupProbe?.httpGet?.path, '/healthz', 'startup: /healthz (answers once Redis did)')
  // With TLS_CERT_FILE the port speaks only HTTPS: a plain-HTTP probe would fail every time.
  const scheme = config.tls === null ? 'HTTP' : 'HTTPS'
  for (const p of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
    t.ok(isRoute(p?.httpGet?.path ?? ''), `${p?.httpGet?.path} is a route of the gateway`)
    t.equal(p?.httpGet?.port, 'http', 'probes the named port "http"')
    t.equal(p?.httpGet?.scheme ?? 'HTTP', scheme, `probes ${p?.httpGet?.path} with ${scheme}, as the port speaks`)
  }

  // Shutdown: the kubelet's grace covers preStop and the gateway's own drain.
  const preStop = preStopSeconds(c)
  t.ok(preStop >= 3, `preStop waits ${preStop} s for endpoints to drain`)
  t.ok((pod.terminationGracePeriodSeconds ?? 30) > config.shutdownGraceMs / 1000 + preStop,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > SHUTDOWN_GRACE_MS ${config.shutdownGraceMs / 1000} s + preStop ${preStop} s`)

  // Service, PDB, HPA point at these pods.
  const labels = deployment.spec.template.metadata.labels
  const matches = (sel: Record<string, string>): boolean => Object.entries(sel).every(([k, v]) => labels[k] === v)
  const service = one(objects, 'Service', 'portcullis') as K8sObject & { spec: { selector: Record<string, string>, ports: Array<{ name: string, targetPort: string }> } }
  t.ok(matches(service.spec.selector), 'the Service selects the gateway pods')
  t.same(service.spec.ports.map((p) => p.targetPort), ['http', 'management'], 'the Service targets the ports "http" and "management"')
  t.ok(matches(deployment.spec.selector.matchLabels), 'the Deployment selector matches its pods')
  const pdb = one(objects, 'PodDisruptionBudget', 'portcullis') as K8sObject & { spec: { minAvailable: number, selector: { matchLabels: Record<string, string> } } }
  t.ok(matches(pdb.spec.selector.matchLabels) && pdb.spec.minAvailable < deployment.spec.replicas, 'the PDB lets one pod go at a time')
  const hpa = one(objects, 'HorizontalPodAutoscaler', 'portcullis') as K8sObject & { spec: { minReplicas: number, scaleTargetRef: { kind: string, name: string } } }
  t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'portcullis' }, 'the HPA scales the Deployment')
  t.ok(hpa.spec.minReplicas >= 2, 'the HPA keeps at least two')
}

/** Every Deployment of the output: non-root, read-only root, no capabilities, seccomp, no token, sized. */
function checkHardening (t: Test, objects: K8sObject[]): void {
  for (const d of objects.filter((o) => o.kind === 'Deployment')) {
    const pod = podSpec(d)
    const n = d.metadata.name
    t.equal(pod.automountServiceAccountToken, false, `${n}: no service-account token`)
    t.equal(pod.securityContext?.runAsNonRoot, true, `${n}: runAsNonRoot`)
    t.ok((pod.securityContext?.runAsUser ?? 0) > 0, `${n}: a numeric non-root uid`)
    t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${n}: seccomp RuntimeDefault`)
    for (const c of pod.containers) {
      t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${n}/${c.name}: read-only root filesystem`)
      t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${n}/${c.name}: no privilege escalation`)
      t.same(c.securityContext?.capabilities?.drop, ['ALL'], `${n}/${c.name}: all capabilities dropped`)
      for (const r of ['cpu', 'memory']) {
        t.ok(c.resources?.requests?.[r] !== undefined && c.resources?.limits?.[r] !== undefined, `${n}/${c.name}: ${r} request and limit`)
      }
    }
  }
  for (const s of objects.filter((o) => o.kind === 'Secret')) {
    t.notOk('ADMIN_TOKEN' in (s.data as Record<string, string>), `${s.metadata.name}: no admin token committed`)
  }
}

/** The TLS overlay: the certificate files the variables name are the keys of a read-only Secret mount. */
function checkTls (t: Test, objects: K8sObject[]): void {
  const c = gateway(objects)
  const pod = podSpec(one(objects, 'Deployment', 'portcullis'))
  const config = loadConfig(gatewayEnv(objects, c))
  t.not(config.tls, null, 'TLS_CERT_FILE and TLS_KEY_FILE are set')
  for (const [name, file, key] of [['TLS_CERT_FILE', config.tls?.certFile, 'tls.crt'], ['TLS_KEY_FILE', config.tls?.keyFile, 'tls.key']] as const) {
    const mount = (c.volumeMounts ?? []).find((m) => file?.startsWith(m.mountPath + '/') === true)
    t.ok(mount !== undefined, `${name} lies in a mounted volume`)
    if (mount === undefined || file === undefined) continue
    t.equal(mount.readOnly, true, `${name}: the mount is read-only`)
    t.equal(file.slice(mount.mountPath.length + 1), key, `${name} is the Secret key ${key} (a kubernetes.io/tls Secret)`)
    const volume = (pod.volumes ?? []).find((v) => v.name === mount.name)
    t.equal(volume?.secret?.secretName, 'portcullis-tls', `${name} comes from the Secret portcullis-tls`)
    t.equal(volume?.secret?.defaultMode, 0o440, `${name}: readable by the owner and the group only`)
  }
  t.equal(pod.securityContext?.fsGroup, pod.securityContext?.runAsGroup, 'the files\' group is the gateway\'s group (fsGroup = runAsGroup)')
}

function checkOverlay (t: Test, name: string, objects: K8sObject[], isRoute: (url: string) => boolean, rendered: boolean): void {
  const monitors = objects.filter((o) => o.kind === 'ServiceMonitor')
  const secrets = objects.filter((o) => o.kind === 'Secret')
  if (name === 'base') {
    t.equal(secrets.length, 0, 'the base commits no Secret: it references portcullis-secrets')
  } else if (name === 'prometheus') {
    const sm = one(objects, 'ServiceMonitor', 'portcullis') as K8sObject & { spec: { selector: { matchLabels: Record<string, string> }, endpoints: Array<{ port: string, path: string }> } }
    const service = one(objects, 'Service', 'portcullis') as K8sObject & { spec: { ports: Array<{ name: string }> } }
    t.same(sm.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'portcullis' })
    t.ok(Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels?.[k] === v), 'the ServiceMonitor selects the Service')
    for (const e of sm.spec.endpoints) {
      t.ok(service.spec.ports.some((p) => p.name === e.port), `scrapes the Service port "${e.port}"`)
      t.equal(e.port, 'management', 'scrapes the management port: /metrics answers 404 on the proxy port')
      t.ok(isRoute(e.path), `${e.path} is a route of the gateway`)
    }
  } else if (name === 'scratch') {
    const redis = one(objects, 'Service', 'redis') as K8sObject & { spec: { ports: Array<{ port: number }> } }
    const secret = one(objects, 'Secret', 'portcullis-secrets') as K8sObject & { data: Record<string, string> }
    const url = new URL(Buffer.from(secret.data.REDIS_URL ?? '', 'base64').toString())
    t.equal(url.hostname, redis.metadata.name, 'REDIS_URL names the scratch Redis Service')
    t.equal(Number(url.port), redis.spec.ports[0]?.port, 'REDIS_URL has its port')
  } else if (name === 'tls') {
    t.equal(secrets.length, 0, 'no key committed: the Secret is made outside')
    // Its patch changes the base's Deployment: only the rendered objects show it.
    if (rendered) checkTls(t, objects)
  } else {
    t.fail(`overlay ${name} has no checks in this test`)
  }
  if (name !== 'prometheus') t.equal(monitors.length, 0, 'a ServiceMonitor only in the prometheus overlay (it needs the CRD)')
}

const nameOf = (dir: string): string => dir.endsWith('base') ? 'base' : dir.split('/').pop() as string

test('the overlays are the ones documented', async (t) => {
  t.same(overlays.sort(), ['prometheus', 'scratch', 'tls'])
})

for (const dir of dirs) {
  const name = nameOf(dir)
  test(`${name}: the raw files validate and say what the gateway knows`, async (t) => {
    const isRoute = await gatewayRoutes()
    const objects = readRaw(dir)
    for (const o of objects) await t.resolves(validateObject(o), `${o.kind} ${o.metadata.name} validates`)
    checkGateway(t, objects, isRoute)
    checkHardening(t, objects)
    checkOverlay(t, name, objects, isRoute, false)
  })

  test(`${name}: kubectl kustomize renders it, and the rendered objects validate`, { skip: kubectl === null ? 'kubectl is not on PATH (.ci/run installs it): only the raw files were checked' : false }, async (t) => {
    const isRoute = await gatewayRoutes()
    const objects = render(kubectl as string, dir)
    t.ok(objects.length >= 5, `${objects.length} objects`)
    for (const o of objects) await t.resolves(validateObject(o), `${o.kind} ${o.metadata.name} validates`)
    const configMap = one(objects, 'ConfigMap', 'portcullis-config')
    t.match(configMap.metadata.name, /^portcullis-config-[a-z0-9]{10}$/, 'the ConfigMap name carries its hash (config changes roll the pods)')
    const ref = gateway(objects).envFrom?.[0]?.configMapRef?.name
    t.equal(ref, configMap.metadata.name, 'the Deployment refers to the hashed ConfigMap')
    t.equal(gateway(objects).image, `portcullis:${pkg.version}`, 'the kustomization tags the image with the package version')
    checkGateway(t, objects, isRoute)
    checkHardening(t, objects)
    checkOverlay(t, name, objects, isRoute, true)
  })
}

test('validation catches a broken object (the check can fail)', async (t) => {
  const objects = readRaw(join(kube, 'base'))
  const d = structuredClone(one(objects, 'Deployment', 'portcullis')) as Deployment
  ;(d.spec as unknown as Record<string, unknown>).replicas = 'two'
  await t.rejects(validateObject(d), /replicas must be integer/)
})
