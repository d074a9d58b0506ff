// Token ids and API keys: their one grammar each, and how fresh ones are made (docs/tokens.md).
import { randomBytes, randomInt } from 'node:crypto'

const ID_PREFIX = 'tok_'
const ID_LENGTH = 12
/** The 32 symbols of a token id after `tok_` (lowercase RFC 4648 base32: a-z, 2-7). */
export const TOKEN_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'

/**
 * The token id grammar as a JSON Schema / RegExp pattern: `tok_` and 12 characters of the
 * alphabet. Generated, imported, shown and revoked ids all have it; nothing else is an id.
 */
export const TOKEN_ID_PATTERN = `^${ID_PREFIX}[a-z2-7]{${ID_LENGTH}}$`
/** The token id grammar in words, for messages and schema descriptions. */
export const TOKEN_ID_SHAPE = `${ID_PREFIX} followed by ${ID_LENGTH} characters of a-z and 2-7, e.g. tok_k3xq7m2vb4pa`
const ID_RE = new RegExp(TOKEN_ID_PATTERN)

/** A fresh API key: `pc_` and 192 random bits as 32 base64url characters. */
export function generateApiKey (): string {
  return 'pc_' + randomBytes(24).toString('base64url')
}

/** A fresh public token id: `tok_` and 12 lowercase base32 characters (60 random bits). */
export function generateTokenId (): string {
  let s = ID_PREFIX
  for (let i = 0; i < ID_LENGTH; i++) s += TOKEN_ID_ALPHABET[randomInt(32)]
  return s
}

/** True when the text has the token id shape (not proof that it exists). */
export function looksLikeTokenId (s: string): boolean {
  return ID_RE.test(s)
}
