import { test } from 'tap'
import { TOKEN_ID_ALPHABET, TOKEN_ID_PATTERN, generateApiKey, generateTokenId, looksLikeTokenId } from '../../src/tokens/ids.js'

test('api keys: pc_ + 32 base64url chars of 192 random bits, never repeated', async (t) => {
  const keys = Array.from({ length: 2000 }, generateApiKey)
  t.same(keys.filter((k) => !/^pc_[A-Za-z0-9_-]{32}$/.test(k)), [], 'format')
  t.ok(keys.every((k) => Buffer.from(k.slice(3), 'base64url').length === 24), '24 random bytes each')
  t.equal(new Set(keys).size, 2000, 'no repeats')
  // every base64url symbol shows up: the bytes are not biased to a subset
  t.equal(new Set(keys.map((k) => k.slice(3)).join('')).size, 64)
})

test('token ids: tok_ + 12 lowercase base32 chars', async (t) => {
  const ids = Array.from({ length: 2000 }, generateTokenId)
  t.same(ids.filter((id) => !/^tok_[a-z2-7]{12}$/.test(id) || !looksLikeTokenId(id)), [], 'format')
  t.equal(new Set(ids).size, 2000, 'no repeats')
  t.equal(new Set(ids.map((s) => s.slice(4)).join('')).size, 32, 'all 32 symbols used')
  t.notOk(looksLikeTokenId(''))
  t.notOk(looksLikeTokenId('a'.repeat(65)))
  t.notOk(looksLikeTokenId('tok.x'))
})

test('the id grammar is one definition: tok_ and 12 characters of the alphabet, nothing else', async (t) => {
  t.equal(TOKEN_ID_PATTERN, '^tok_[a-z2-7]{12}$')
  // The pattern's class and the generator's alphabet are the same 32 characters.
  for (let c = 0; c < 0x250; c++) {
    const ch = String.fromCharCode(c)
    t.equal(looksLikeTokenId('tok_' + ch.repeat(12)), TOKEN_ID_ALPHABET.includes(ch), `U+${c.toString(16).padStart(4, '0')}`)
  }
  t.equal(TOKEN_ID_ALPHABET.length, 32)
  for (const s of ['seed-a', 'alice', 'tok_', 'tok_abcdefgh234', 'tok_abcdefgh23456', 'tok_abcdefgh2341', 'TOK_abcdefgh2345',
    'tok_abcdefgh2345\n', 'xtok_abcdefgh2345', 'tok_ABCDEFGH2345']) t.notOk(looksLikeTokenId(s), JSON.stringify(s))
  t.ok(looksLikeTokenId('tok_abcdefgh2345'))
})
