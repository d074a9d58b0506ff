// Token ids and API keys: their one grammar each, and how fresh ones are made (docs/tokens.md).
import { randomBytes, randomInt } from 'node:crypto'

/** The 32 symbols of a token id after `tok_` (lowercase RFC 4648 base32). */
export const TOKEN_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
const ID_LENGTH = 12

/** The token id grammar as a JSON Schema / RegExp pattern: `tok_` and 12 base32 characters. */
export const TOKEN_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$'
/** The token id grammar in words, for messages and schema descriptions. */
export const TOKEN_ID_SHAPE = '1 to 64 characters of A-Z a-z 0-9 _ -'
const ID_RE = new RegExp(TOKEN_ID_PATTERN)

/** A fresh API key: `pc_` and 192 random bits as 32 base64url characters. */
export function generateApiKey (): string {
  return 'pc_' + randomBytes(24).toString('base64url')
}

/** A fresh public token id: `tok_` and 12 lowercase base32 characters (60 random bits). */
export function generateTokenId (): string {
  let s = 'tok_'
  for (let i = 0; i < ID_LENGTH; i++) s += TOKEN_ID_ALPHABET[randomInt(32)]
  return s
}

/** True when the text has the shape of a token id (not proof that it exists). */
export function looksLikeTokenId (s: string): boolean {
  return ID_RE.test(s)
}
