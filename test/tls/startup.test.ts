// The real server (`portcullis serve`) with TLS: bad TLS variables stop it at once with one line
// naming the variable (exit 1, in the primary of WORKERS>1 too); good ones serve h2 and HTTP/1.1
// from every worker, and SIGTERM still exits 0.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnServe, exitWithin, killHard } from '../helpers/process.js'
import { sharedRedis, freePort } from '../helpers/redis.js'
import { makeTestCertificate } from '../helpers/tls.js'
import { h1Request, h2Request } from '../helpers/tls-clients.js'
import { until } from '../helpers/until.js'

const cert = makeTestCertificate()
const notPem = join(cert.dir, 'not.pem')
writeFileSync(notPem, 'this is not PEM\n')
t.teardown(() => { cert.remove() })
const ROUTES = '/api=http://127.0.0.1:1'

const REFUSED: Array<[string, Record<string, string>, string, RegExp]> = [
  ['cert without key', { TLS_CERT_FILE: cert.certFile }, 'TLS_KEY_FILE', /both or neither/],
  ['key without cert', { TLS_KEY_FILE: cert.keyFile }, 'TLS_CERT_FILE', /both or neither/],
  ['a key that is not the certificate\'s', { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.otherKeyFile }, 'TLS_KEY_FILE', /does not match the certificate/],
  ['the same, WORKERS=2', { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.otherKeyFile, WORKERS: '2' }, 'TLS_KEY_FILE', /does not match/],
  ['unreadable cert', { TLS_CERT_FILE: join(cert.dir, 'missing.pem'), TLS_KEY_FILE: cert.keyFile }, 'TLS_CERT_FILE', /cannot be read .*ENOENT/],
  ['unreadable key', { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.dir }, 'TLS_KEY_FILE', /cannot be read .*EISDIR/],
  ['cert not PEM', { TLS_CERT_FILE: notPem, TLS_KEY_FILE: cert.keyFile }, 'TLS_CERT_FILE', /not a PEM certificate/],
  ['key not PEM', { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: notPem }, 'TLS_KEY_FILE', /not a PEM private key/]
]

t.test('bad TLS variables: exit 1, one stderr line naming the variable', async (t) => {
  // One after the other: a shared 2-core machine starts eight node processes at once too slowly.
  for (const [name, env, variable, text] of REFUSED) {
    const p = spawnServe({ REDIS_URL: 'redis://127.0.0.1:1', ROUTES, ...env })
    const exit = await exitWithin(p, 30_000)
    if (exit === null) await killHard(p)
    t.same(exit, { code: 1, signal: null }, `${name}: exit code 1`)
    const lines = p.stderr().split('\n').filter((l) => l !== '')
    t.equal(lines.length, 1, `${name}: one line (${p.stderr()})`)
    t.match(lines[0], new RegExp(`^portcullis: invalid configuration: ${variable} `), `${name}: names ${variable}`)
    t.match(lines[0], text, `${name}: says what is wrong`)
  }
})

t.test('WORKERS=2 with TLS: every worker serves h2 and HTTP/1.1 on the shared listener; SIGTERM exits 0', async (t) => {
  const redis = await sharedRedis()
  t.teardown(async () => { await redis.close() })
  const port = await freePort()
  const url = `https://127.0.0.1:${port}`
  const p = spawnServe({ REDIS_URL: redis.url, ROUTES, PORT: String(port), HOST: '127.0.0.1', WORKERS: '2', TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, SHUTDOWN_GRACE_MS: '5000' })
  t.teardown(async () => { await killHard(p) })
  const up = await until(async () => await h1Request(url, cert.cert, { path: '/healthz' }).then((a) => a.status === 200, () => false), 30_000, 100)
  t.ok(up, `listening over TLS (${p.stderr()})`)
  // Each new connection lands on either worker (node:cluster shares the listener): all must answer.
  const answers = []
  for (let i = 0; i < 20; i++) {
    answers.push(i % 2 === 0 ? await h2Request(url, cert.cert, { path: '/readyz' }) : await h1Request(url, cert.cert, { path: '/readyz' }))
  }
  t.same(answers.map((a) => a.status), answers.map(() => 200), 'every connection answered 200')
  t.same(answers.map((a) => a.alpn), answers.map((_a, i) => i % 2 === 0 ? 'h2' : 'http/1.1'), 'h2 and http/1.1 negotiated')
  p.proc.kill('SIGTERM')
  const exit = await exitWithin(p, 20_000)
  // On a failure, what the primary and workers said last: the log's end tells which step failed.
  t.same(exit, { code: 0, signal: null }, 'SIGTERM: clean exit', exit?.code === 0 ? {} : { stderr: p.stderr(), stdout: p.stdout().split('\n').slice(-12).join('\n') })
})
