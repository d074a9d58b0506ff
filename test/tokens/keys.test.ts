import { test } from 'tap'
import { createHash } from 'node:crypto'
import { generateApiKey } from '../../src/tokens/ids.js'
import { digestApiKey, tokenKeys, tokenRecordKey, tokenLimiterKey, tokenIndexKey } from '../../src/tokens/keys.js'

const KEY = 'pc_0123456789abcdefABCDEF'

test('digest is lowercase hex SHA-256 of the key', async (t) => {
  t.equal(digestApiKey('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  t.equal(digestApiKey(KEY), createHash('sha256').update(KEY).digest('hex'))
  t.match(digestApiKey(generateApiKey()), /^[0-9a-f]{64}$/)
})

test('key names share the {digest} hash tag and tokenKeys is built from them', async (t) => {
  const d = digestApiKey(KEY)
  t.equal(tokenRecordKey('portcullis:', d), `portcullis:{${d}}:token`)
  t.equal(tokenLimiterKey('portcullis:', d), `portcullis:{${d}}:gcra`)
  t.equal(tokenIndexKey('portcullis:'), 'portcullis:tokens')
  t.same(tokenKeys('p:', d), { record: tokenRecordKey('p:', d), limiter: tokenLimiterKey('p:', d) })
})

test('tokenKeys share one hash tag and accept only a digest', async (t) => {
  const d = 'ab'.repeat(32)
  t.same(tokenKeys('portcullis:', d), { record: `portcullis:{${d}}:token`, limiter: `portcullis:{${d}}:gcra` })
  t.same(tokenKeys('', d), { record: `{${d}}:token`, limiter: `{${d}}:gcra` })
  for (const bad of ['', 'pc_secretkey', 'AB'.repeat(32), 'ab'.repeat(31), 'ab'.repeat(33), `${'ab'.repeat(31)}}{`]) {
    t.throws(() => tokenKeys('p:', bad), TypeError, JSON.stringify(bad))
  }
})
