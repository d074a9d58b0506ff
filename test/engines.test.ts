// package.json `engines` and the Dockerfile's Node line must be ones every installed production
// dependency supports (docs/operations.md): read from node_modules, so an upgrade cannot drift past them.
import { test } from 'tap'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import semver from 'semver'

const root = new URL('..', import.meta.url).pathname
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } }
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean, devOptional?: boolean, optional?: boolean }>
}

/** Every installed package of the production tree (what `npm ci --omit=dev` installs), with its engines.node. */
function productionEngines (): Array<{ name: string, range: string }> {
  const out: Array<{ name: string, range: string }> = []
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev === true || entry.devOptional === true) continue
    const manifest = join(root, path, 'package.json')
    // An optional dependency for another platform is not installed here, nor in the image.
    if (!existsSync(manifest) && entry.optional === true) continue
    const installed = JSON.parse(readFileSync(manifest, 'utf8')) as { name: string, version: string, engines?: { node?: string } }
    const range = installed.engines?.node
    if (range !== undefined) out.push({ name: `${installed.name}@${installed.version}`, range })
  }
  return out
}

/** The Node version line of the Dockerfile's runtime stage, as a range (`node:24-…` → every 24.x). */
function dockerNodeRange (): string {
  const froms = readFileSync(join(root, 'Dockerfile'), 'utf8').split('\n').filter((l) => l.startsWith('FROM '))
  const tag = /^FROM node:(\d+(?:\.\d+){0,2})-/.exec(froms.at(-1) ?? '')?.[1]
  if (tag === undefined) throw new Error('the runtime stage is not FROM node:<version>-…')
  const [major, minor = '0', patch = '0'] = tag.split('.')
  return `>=${major}.${minor}.${patch} <${Number(major) + 1}.0.0-0`
}

test('package.json engines.node is within every production dependency\'s engines.node', async (t) => {
  const deps = productionEngines()
  t.ok(deps.length > 10, `read the engines of ${deps.length} production packages`)
  t.ok(deps.some((d) => d.name.startsWith('undici@')), 'undici (which declares one) is among them')
  for (const d of deps) {
    t.ok(semver.subset(pkg.engines.node, d.range), `engines "${pkg.engines.node}" ⊆ ${d.name} "${d.range}"`)
  }
})

test('the Dockerfile runs a Node line that package.json engines and every production dependency accept', async (t) => {
  const image = dockerNodeRange()
  t.ok(semver.subset(image, pkg.engines.node), `image ${image} ⊆ engines "${pkg.engines.node}"`)
  for (const d of productionEngines()) t.ok(semver.subset(image, d.range), `image ${image} ⊆ ${d.name} "${d.range}"`)
})
