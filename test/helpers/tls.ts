// Self-signed certificates made with `openssl` at test time (.ci/run installs it when missing).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A certificate (CN and SAN 127.0.0.1/localhost) and its key, as files and as PEM text. */
export interface TestCertificate {
  dir: string
  certFile: string
  keyFile: string
  /** A second key that does not match the certificate. */
  otherKeyFile: string
  cert: string
  /** Removes the folder. */
  remove: () => void
}

/** Generates a fresh self-signed EC certificate in a temporary folder. */
export function makeTestCertificate (): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'))
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  const otherKeyFile = join(dir, 'other-key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' })
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', otherKeyFile], { stdio: 'ignore' })
  return {
    dir,
    certFile,
    keyFile,
    otherKeyFile,
    cert: readFileSync(certFile, 'utf8'),
    remove: () => { rmSync(dir, { recursive: true, force: true }) }
  }
}
