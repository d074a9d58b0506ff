// The bearer token parser and the token-in-query check (docs/reference.md, "Tokens in query
// strings"), table-driven with the encodings an attacker or a careless client would use.
import { test } from 'tap'
import { bearerToken, parseBearer, queryCarriesToken } from '../../src/lib/bearer.js'

// An imported key with the characters that percent-encoding and form decoding treat specially.
const KEY = 'slash/plus+key0123456=='
/** Every character of `s` percent-encoded, as some clients do. */
const pct = (s: string, lower = false): string => [...s].map((c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')[lower ? 'toLowerCase' : 'toUpperCase']()).join('')

test('a query carrying the token or an access_token parameter is refused', async (t) => {
  const enc = encodeURIComponent(KEY) // slash%2Fplus%2Bkey0123456%3D%3D
  const cases: Array<[string, string]> = [
    ['the key raw', `?q=${KEY}`],
    ['the key encoded, then a stray % (the reported bypass)', `?q=${enc}&discount=50%`],
    ['a stray % first, then the key encoded', `?discount=50%&q=${enc}`],
    ['an invalid escape inside the same value', `?q=%zz${enc}`],
    ['a truncated escape right after the key', `?q=${enc}%2`],
    ['the key fully percent-encoded', `?q=${pct(KEY)}`],
    ['the key fully percent-encoded, lower-case hex', `?q=${pct(KEY, true)}`],
    ['the key encoded twice', `?q=${encodeURIComponent(enc)}`],
    ['the key encoded three times', `?q=${encodeURIComponent(encodeURIComponent(enc))}`],
    ['only + encoded (%2B), / and = raw', '?q=slash/plus%2Bkey0123456=='],
    ['only / encoded (%2F)', '?q=slash%2Fplus+key0123456=='],
    ['the key without its = padding', '?q=slash%2Fplus%2Bkey0123456'],
    ['the key as a parameter name', `?${enc}`],
    ['the key as a name with its padding read as =', '?slash%2Fplus%2Bkey0123456=='],
    ['the key after ; separators', `?a=1;q=${enc};b=2`],
    ['the key after empty pairs and &&', `?&&q=${enc}&&`],
    ['the key inside a longer value', `?q=abc${enc}def`],
    ['access_token with the key', `?access_token=${enc}`],
    ['access_token with anything', '?access_token=zzz'],
    ['access_token empty', '?access_token='],
    ['access_token without =', '?access_token'],
    ['access_token upper case', '?ACCESS_TOKEN=x'],
    ['access_token mixed case', '?a=1&Access_Token=x'],
    ['access_token after ;', '?a=1;access_token=x'],
    ['access_token after empty pairs', '?&&;access_token=x'],
    ['access%5Ftoken', '?access%5Ftoken=x'],
    ['access%5ftoken (lower-case hex)', '?access%5ftoken=x'],
    ['access_token fully percent-encoded', `?${pct('access_token')}=x`],
    ['access_token encoded twice', '?access%255Ftoken=x'],
    ['access_token with a stray % elsewhere', '?x=100%&access%5Ftoken=x'],
    ['access_token[] (PHP array)', '?access_token[]=x'],
    ['access_token%5B0%5D (PHP array, encoded)', '?access_token%5B0%5D=x'],
    ['access.token (PHP reads . as _)', '?access.token=x'],
    ['access+token (PHP reads a space as _)', '?access+token=x'],
    ['access_token with a trailing space', '?access_token%20=x'],
    ['access_token then NUL (C reads up to the NUL)', '?access_token%00junk=x'],
    ['access_token with an encoded = in the name', '?access_token%3Dx=1'],
    ['access_token behind an encoded &', '?x%26access_token=1'],
    ['access_token with a long s (Java equalsIgnoreCase)', '?acce%C5%BF%C5%BF_token=x'],
    ['access_token with a Kelvin sign', '?access_to%E2%84%AAen=x']
  ]
  for (const [label, query] of cases) t.equal(queryCarriesToken(query, KEY), true, `${label}: ${query}`)
  // Without a bearer token, the access_token name still counts (and nothing else can).
  t.equal(queryCarriesToken('?access%5Ftoken=x', null), true)
})

test('ordinary queries pass, including ones with bad escapes and look-alikes', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['no query', '', KEY],
    ['a bare ?', '?', KEY],
    ['plain parameters', '?q=token&page=2', KEY],
    ['a stray %', '?discount=50%', KEY],
    ['bad escapes', '?a=%zz&b=%&c=%4', KEY],
    ['a parameter that merely starts like access_token', '?access_tokens=1&access_tok=2&xaccess_token=3', KEY],
    ['access_token inside a value', '?redirect=%2Fcb%3Faccess_token%3Dx', KEY],
    ['part of the key', '?q=slash%2Fplus', KEY],
    ['the key in another case (keys are case-sensitive)', `?q=${encodeURIComponent(KEY.toUpperCase())}`, KEY],
    ['the key split across parameters', '?q=slash/plus&r=+key0123456==', KEY],
    // A short token is not searched for without its padding: "abc" would match far too much.
    ['a short padded token, its unpadded part', '?q=abcdefgh', 'abcdefgh========'],
    ['empty pairs and separators only', '?&&;;&', KEY]
  ]
  for (const [label, query, token] of cases) t.equal(queryCarriesToken(query, token), false, `${label}: ${query}`)
  t.equal(queryCarriesToken('?q=abcdefgh========', 'abcdefgh========'), true, 'a short padded token is still found whole')
})

test('parseBearer and bearerToken', async (t) => {
  t.same(parseBearer(`Bearer ${KEY}`), { ok: true, token: KEY })
  t.same(parseBearer(`bearer   ${KEY}`), { ok: true, token: KEY })
  t.match(parseBearer('Basic abc'), { ok: false, missing: false })
  t.match(parseBearer('Bearer a b'), { ok: false, missing: false })
  t.match(parseBearer('Bearer '), { ok: false, problem: /empty/ })
  t.match(parseBearer(`Bearer ${'a'.repeat(513)}`), { ok: false, problem: /too long/ })
  t.same(bearerToken(['Host', 'x']), { ok: false, missing: true })
  t.same(bearerToken(['authorization', `Bearer ${KEY}`]), { ok: true, token: KEY })
  t.match(bearerToken(['Authorization', `Bearer ${KEY}`, 'AUTHORIZATION', `Bearer ${KEY}`]), { ok: false, problem: /more than one/ })
})
