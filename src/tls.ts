/**
 * Reading TLS_CERT_FILE and TLS_KEY_FILE (src/lib/config.ts checks only that both or neither are
 * set: reading files is not pure). Called by src/server.ts before anything starts, so a bad file is
 * one line naming the variable and exit 1, in the primary of WORKERS>1 too.
 */
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { ConfigError } from './lib/config-error.js'
import type { Config } from './lib/config.js'

/** The PEM contents of the proxy listener's certificate chain and private key. */
export interface TlsMaterial { cert: Buffer, key: Buffer }

/** Reads and checks the PEM files: each readable and parseable, and the key the certificate's. */
export function readTlsMaterial (files: NonNullable<Config['tls']>): TlsMaterial {
  const cert = readPem('TLS_CERT_FILE', files.certFile)
  const key = readPem('TLS_KEY_FILE', files.keyFile)
  try {
    createSecureContext({ cert })
  } catch (err) {
    throw new ConfigError('TLS_CERT_FILE', `is not a PEM certificate (chain): ${reason(err)}`)
  }
  try {
    createSecureContext({ key })
  } catch (err) {
    throw new ConfigError('TLS_KEY_FILE', `is not a PEM private key: ${reason(err)}`)
  }
  try {
    createSecureContext({ cert, key })
  } catch (err) {
    throw new ConfigError('TLS_KEY_FILE', `does not match the certificate in TLS_CERT_FILE: ${reason(err)}`)
  }
  return { cert, key }
}

function readPem (variable: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new ConfigError(variable, `cannot be read (${path}): ${(err as NodeJS.ErrnoException).code ?? reason(err)}`)
  }
}

/** OpenSSL's reason, one line. */
function reason (err: unknown): string {
  return String((err as Error).message).split('\n')[0] ?? 'invalid'
}
