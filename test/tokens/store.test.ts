import { test } from 'tap'
import type { Redis } from 'ioredis'
import { RedisServer, dumpAll } from '../helpers/redis.js'
import { TokenStore } from '../../src/tokens/store.js'
import { digestApiKey, tokenIndexKey, tokenLimiterKey, tokenRecordKey } from '../../src/tokens/keys.js'
import { routesRevision } from '../../src/tokens/record.js'
import { TokenInputError } from '../../src/tokens/validate.js'

const P = 'pct:'
/** A valid, distinct token id per number: its decimal digits spelled as the letters a-j. */
const bulkId = (i: number): string => 'tok_bulk' + [...String(i).padStart(8, '0')].map((d) => 'abcdefghij'[Number(d)]).join('')

/** Every key and every value (hash fields and values included) in the database, as text. */
async function dumpAllText (r: Redis): Promise<string[]> {
  const { keys, values } = await dumpAll(r)
  return [...keys, ...values]
}

test('token store against a real Redis', async (t) => {
  const server = await new RedisServer().start()
  const r = server.client()
  t.teardown(async () => { r.disconnect(); await server.close() })
  const store = new TokenStore(r, P, { defaultWindowSeconds: 60 })
  t.beforeEach(async () => { await r.flushdb() })

  await t.test('create → show → list → revoke by id', async (t) => {
    const now = Date.parse('2026-03-01T12:00:00Z')
    const c = await store.create({ rate_limit: 100, allowed_routes: ['/api/v1/users/*'], name: 'ci' }, now)
    t.match(c.api_key, /^pc_[A-Za-z0-9_-]{32}$/)
    t.match(c.id, /^tok_[a-z2-7]{12}$/)
    t.same(c, { api_key: c.api_key, id: c.id, name: 'ci', rate_limit: 100, burst: 100, window_seconds: 60, expires_at: null, allowed_routes: ['/api/v1/users/*'], created_at: '2026-03-01T12:00:00Z' })
    const d = digestApiKey(c.api_key)
    const stored = await r.hgetall(tokenRecordKey(P, d))
    t.same(stored, { id: c.id, name: 'ci', rate_limit: '100', allowed_routes: '["/api/v1/users/*"]', routes_rev: routesRevision('["/api/v1/users/*"]'), created_at: '2026-03-01T12:00:00Z' }, 'burst and window absent in Redis')
    t.equal(await r.hget(tokenIndexKey(P), c.id), d)
    const { api_key: _k, ...pub } = c
    t.same(await store.show(c.id), pub)
    t.same(await store.list(), [pub])
    t.notOk(JSON.stringify(await store.list()).includes(c.api_key))

    await r.set(tokenLimiterKey(P, d), '123')
    t.equal(await store.revoke(c.id), true)
    t.equal(await r.exists(tokenRecordKey(P, d), tokenLimiterKey(P, d)), 0, 'record and limiter gone')
    t.equal(await r.hexists(tokenIndexKey(P), c.id), 0, 'index entry gone')
    t.equal(await store.show(c.id), null)
    t.same(await store.list(), [])
    t.equal(await store.revoke(c.id), false, 'second revoke finds nothing')
  })

  await t.test('create with every option; expiry stored as text and microseconds', async (t) => {
    const c = await store.create({ rate_limit: 5, burst: 10, window_seconds: 2, expires_at: '2099-01-01T01:00:00+01:00', allowed_routes: ['GET /a/*', '/b'] })
    const h = await r.hgetall(tokenRecordKey(P, digestApiKey(c.api_key)))
    t.equal(h.expires_at, '2099-01-01T00:00:00Z')
    t.equal(h.expires_at_us, String(Date.parse('2099-01-01T00:00:00Z') * 1000))
    t.equal(h.burst, '10')
    t.equal(h.window_seconds, '2')
    t.equal(c.expires_at, '2099-01-01T00:00:00Z')
  })

  await t.test('create refuses bad input and writes nothing', async (t) => {
    await t.rejects(store.create({ rate_limit: 0, allowed_routes: ['/a*'] }), TokenInputError)
    const err = await store.create({ rate_limit: 1, allowed_routes: ['/a*'], expires_at: '2000-01-01T00:00:00Z' }).catch((e: unknown) => e)
    t.same((err as TokenInputError).problems.length, 2)
    t.equal(await r.dbsize(), 0)
  })

  await t.test('revoke by plain key; unknown → false', async (t) => {
    const a = await store.create({ rate_limit: 1, allowed_routes: ['/*'] })
    const b = await store.create({ rate_limit: 1, allowed_routes: ['/*'] })
    t.equal(await store.revoke(a.api_key), true)
    t.equal(await store.show(a.id), null)
    t.same((await store.list()).map((x) => x.id), [b.id])
    t.equal(await store.revoke(a.api_key), false)
    t.equal(await store.revoke('tok_doesnotexist'), false)
    t.equal(await store.revoke('pc_not-a-key-that-exists-anywhere'), false)
    t.equal(await store.revoke(''), false)
    t.equal(await store.show('no such id!'), null)
    t.equal(await store.show(''), null)
  })

  const seed = [
    { api_key: 'seed-key-aaaaaaaaaaaaaaaa', id: 'tok_seedaaaaaaaa', rate_limit: 100, expires_at: '2027-12-31T23:59:59Z', allowed_routes: ['/api/v1/users/*', '/api/v1/products/*'] },
    { api_key: 'seed-key-bbbbbbbbbbbbbbbb', rate_limit: 10, burst: 20, window_seconds: 1, name: 'b', allowed_routes: ['GET,HEAD /api/*'] }
  ]

  await t.test('import stores every record; the keys work for revoke; no plaintext key anywhere', async (t) => {
    const ids = await store.importRecords(seed)
    t.equal(ids[0], 'tok_seedaaaaaaaa')
    t.match(ids[1], /^tok_/)
    const list = await store.list()
    t.same(list.map((x) => x.id).sort(), [...ids].sort())
    const a = await store.show('tok_seedaaaaaaaa')
    t.same(a, { id: 'tok_seedaaaaaaaa', name: '', rate_limit: 100, burst: 100, window_seconds: 60, expires_at: '2027-12-31T23:59:59Z', allowed_routes: seed[0]?.allowed_routes, created_at: a?.created_at })
    const created = await store.create({ rate_limit: 1, allowed_routes: ['/*'] })
    const everything = (await dumpAllText(r)).join('\n')
    for (const key of [...seed.map((s) => s.api_key), created.api_key]) {
      t.notOk(everything.includes(key), 'plaintext key not stored')
      t.ok(everything.includes(digestApiKey(key)), 'its digest is')
    }
    t.equal(await store.revoke('seed-key-bbbbbbbbbbbbbbbb'), true)
    t.equal(await store.show(ids[1] as string), null)
  })

  await t.test('import is all-or-nothing', async (t) => {
    const bad = [...seed, { api_key: 'seed-key-cccccccccccccccc', rate_limit: 1, allowed_routes: ['/a/../b'] }]
    const err = await store.importRecords(bad).catch((e: unknown) => e)
    t.ok(err instanceof TokenInputError)
    t.match((err as TokenInputError).problems, [/^record 3: allowed_routes\[0\]: invalid route pattern/])
    t.equal(await r.dbsize(), 0, 'nothing written')
    const dup = await store.importRecords([seed[0], { ...seed[1], id: 'tok_seedaaaaaaaa' }, { ...seed[1], api_key: seed[0]?.api_key }]).catch((e: unknown) => e)
    t.match((dup as TokenInputError).problems, [/id tok_seedaaaaaaaa is also used by record 1/, /api_key is the same as in record 1/])
    t.equal(await r.dbsize(), 0, 'nothing written')
    await t.rejects(store.importRecords([]), TokenInputError)
    await t.rejects(store.importRecords('nonsense'), TokenInputError)
    t.equal(await r.dbsize(), 0)
  })

  await t.test('an imported id of another shape is refused, with the shape; such text is no id to show', async (t) => {
    const err = await store.importRecords({ ...seed[0], id: 'seed-a' }).catch((e: unknown) => e)
    t.ok(err instanceof TokenInputError)
    t.same((err as TokenInputError).problems, ['record 1: id: must be tok_ followed by 12 characters of a-z and 2-7, e.g. tok_k3xq7m2vb4pa'])
    t.equal(await r.dbsize(), 0, 'nothing written')
    await r.hset(tokenIndexKey(P), 'seed-a', 'f'.repeat(64))
    t.equal(await store.show('seed-a'), null, 'an index entry of the old shape is not looked up')
    await r.flushdb()
  })

  await t.test('an id that belongs to another key is refused before anything is written', async (t) => {
    await store.importRecords(seed[0])
    const before = await dumpAllText(r)
    const err = await store.importRecords([seed[1], { ...seed[1], api_key: 'another-key-1234567890', id: 'tok_seedaaaaaaaa' }]).catch((e: unknown) => e)
    t.same((err as TokenInputError).problems, ['record 2 (id tok_seedaaaaaaaa): id tok_seedaaaaaaaa already belongs to another token'])
    t.same(await dumpAllText(r), before, 'Redis unchanged')
    const { id: _id, ...seedANoId } = seed[0] ?? {}
    const claimed = await store.importRecords([seedANoId, { ...seed[1], id: 'tok_seedaaaaaaaa' }]).catch((e: unknown) => e)
    t.same((claimed as TokenInputError).problems, [
      "record 1: this key's token has id tok_seedaaaaaaaa, which another record of the import claims",
      'record 2 (id tok_seedaaaaaaaa): id tok_seedaaaaaaaa already belongs to another token'
    ])
    t.same(await dumpAllText(r), before, 'Redis unchanged')
  })

  await t.test('re-import edits in place: same id, created_at kept, fields replaced, limiter kept', async (t) => {
    const [id] = await store.importRecords({ ...seed[1], id: undefined })
    const d = digestApiKey(seed[1]?.api_key ?? '')
    await r.set(tokenLimiterKey(P, d), '42')
    const before = await store.show(id as string)
    const [again] = await store.importRecords({ api_key: seed[1]?.api_key, rate_limit: 7, allowed_routes: ['/only/*'] })
    t.equal(again, id, 'id kept')
    const after = await store.show(id as string)
    t.same(after, { id, name: '', rate_limit: 7, burst: 7, window_seconds: 60, expires_at: null, allowed_routes: ['/only/*'], created_at: before?.created_at })
    t.notOk('burst' in await r.hgetall(tokenRecordKey(P, d)), 'old burst does not linger')
    t.equal(await r.hget(tokenRecordKey(P, d), 'routes_rev'), routesRevision('["/only/*"]'), 'the routes revision follows the edit')
    t.equal(await r.get(tokenLimiterKey(P, d)), '42', 'an edit does not reset the limiter')

    // giving a new id renames the token: the old id no longer resolves
    const [renamed] = await store.importRecords({ ...seed[1], id: 'tok_renamedaaaaa' })
    t.equal(renamed, 'tok_renamedaaaaa')
    t.equal(await store.show(id as string), null)
    t.equal(await r.hexists(tokenIndexKey(P), id as string), 0)
    t.same((await store.list()).map((x) => x.id), ['tok_renamedaaaaa'])
    t.equal(await store.revoke(id as string), false, 'old id revokes nothing')
    t.equal(await store.revoke('tok_renamedaaaaa'), true)
  })

  await t.test('dangling and stale index entries are skipped and never revoke another token', async (t) => {
    const a = await store.create({ rate_limit: 1, allowed_routes: ['/*'] })
    await r.hset(tokenIndexKey(P), 'tok_ghostaaaaaaa', 'f'.repeat(64))
    await r.hset(tokenIndexKey(P), 'tok_staleaaaaaaa', digestApiKey(a.api_key))
    t.same((await store.list()).map((x) => x.id), [a.id])
    t.equal(await store.show('tok_ghostaaaaaaa'), null)
    t.equal(await store.show('tok_staleaaaaaaa'), null)
    t.equal(await store.revoke('tok_staleaaaaaaa'), false)
    t.ok(await store.show(a.id), 'the token the stale entry points at survives')
    t.equal(await r.hexists(tokenIndexKey(P), 'tok_staleaaaaaaa'), 0, 'stale entry cleaned up')
    t.equal(await store.revoke('tok_ghostaaaaaaa'), false)
  })

  await t.test('list walks a large index (several HSCAN pages and read batches), sorted by creation', async (t) => {
    const records = Array.from({ length: 650 }, (_, i) => ({ api_key: `bulk-key-${String(i).padStart(8, '0')}`, id: bulkId(i), rate_limit: 1, allowed_routes: ['/*'] }))
    await store.importRecords(records)
    const list = await store.list()
    t.equal(list.length, 650)
    t.equal(new Set(list.map((x) => x.id)).size, 650)
    t.ok(list.every((x, i) => i === 0 || (list[i - 1]?.created_at ?? '') <= x.created_at))
  })
})
