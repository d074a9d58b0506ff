/**
 * Kubernetes manifests for the deploy tests: render a kustomization with `kubectl kustomize`, or read
 * its files directly (resources, generators) when kubectl is absent; validate objects against the
 * Kubernetes OpenAPI schemas shipped by `kubernetes-models`.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseAllDocuments, parse } from 'yaml'

/** A Kubernetes object as read from YAML. */
export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string, labels?: Record<string, string> }
  [field: string]: unknown
}

/** The path of kubectl, or null when this machine has none (.ci/run installs it). */
export function findKubectl (): string | null {
  const r = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' })
  return r.status === 0 ? 'kubectl' : null
}

/** `kubectl kustomize dir` as objects; throws with kubectl's stderr when the render fails. */
export function render (kubectl: string, dir: string): K8sObject[] {
  const r = spawnSync(kubectl, ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr}`)
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject).filter((o) => o !== null)
}

interface Kustomization {
  resources?: string[]
  configMapGenerator?: Array<{ name: string, envs?: string[], literals?: string[] }>
  secretGenerator?: Array<{ name: string, envs?: string[], literals?: string[] }>
}

/** `NAME=value` lines of an env file or generator literals (comments and blank lines dropped). */
export function parseEnvLines (lines: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of lines.map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))) {
    const eq = line.indexOf('=')
    out[line.slice(0, eq)] = line.slice(eq + 1)
  }
  return out
}

/**
 * The objects a kustomization names, read from its files without kustomize: resources (files and
 * directories, recursively) and generators, with generated names left without their hash suffix.
 */
export function readRaw (dir: string): K8sObject[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization
  const out: K8sObject[] = []
  for (const r of k.resources ?? []) {
    const p = resolve(dir, r)
    if (statSync(p).isDirectory()) out.push(...readRaw(p))
    else out.push(...parseAllDocuments(readFileSync(p, 'utf8')).map((d) => d.toJS() as K8sObject))
  }
  const generated = (g: { name: string, envs?: string[], literals?: string[] }): Record<string, string> => ({
    ...Object.assign({}, ...(g.envs ?? []).map((f) => parseEnvLines(readFileSync(join(dir, f), 'utf8').split('\n')))),
    ...parseEnvLines(g.literals ?? [])
  })
  for (const g of k.configMapGenerator ?? []) {
    out.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data: generated(g) })
  }
  for (const g of k.secretGenerator ?? []) {
    const data = Object.fromEntries(Object.entries(generated(g)).map(([key, v]) => [key, Buffer.from(v).toString('base64')]))
    out.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: g.name }, type: 'Opaque', data })
  }
  return out
}

/** The kubernetes-models module that holds an apiVersion's kinds. */
function modelModule (apiVersion: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}`
  return `kubernetes-models/${apiVersion}`
}

/** Validates one object against its schema; throws naming the object and the first problems. */
export async function validateObject (obj: K8sObject): Promise<void> {
  const mod = await import(modelModule(obj.apiVersion)) as Record<string, (new (data: unknown) => { validate: () => void }) | undefined>
  const Model = mod[obj.kind]
  if (Model === undefined) throw new Error(`${obj.apiVersion} has no kind ${obj.kind}`)
  new Model(obj).validate()
}

/** Finds the one object of a kind whose name starts with `name` (generated names carry a hash suffix). */
export function one (objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (o.metadata.name === name || o.metadata.name.startsWith(`${name}-`)))
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length}`)
  return found[0] as K8sObject
}
