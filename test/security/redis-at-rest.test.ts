// Redis holds no plaintext key (docs/tokens.md): tokens made by the CLI (create and import), the token
// store and the admin API, used through the gateway and one revoked; then every key and every value
// in the database is read back and searched.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { RedisServer, dumpAll } from '../helpers/redis.js'
import { Upstream } from '../helpers/upstream.js'
import { CALM, startGateway } from '../helpers/gateway.js'
import { pointCliAt, runCli } from '../helpers/cli.js'
import { TokenStore } from '../../src/tokens/store.js'
import { digestApiKey } from '../../src/tokens/keys.js'

t.test('no api_key (nor the admin token) is stored anywhere in Redis', async (t) => {
  // A private server: the scan must see this test's data only, and all of it.
  const server = await new RedisServer().start()
  const r = server.client()
  const up = await new Upstream().start()
  const ADMIN = 'adm-' + randomBytes(16).toString('hex')
  const gw = await startGateway({ ...CALM, REDIS_URL: server.url, ADMIN_TOKEN: ADMIN, ROUTES: `/api/v1/users=${up.url}` })
  const restoreEnv = pointCliAt(server.url, 'portcullis:')
  t.teardown(async () => {
    restoreEnv()
    await gw.app.close()
    await up.close()
    r.disconnect()
    await server.close()
  })

  const keys: string[] = []
  const ids: string[] = []
  // CLI create
  for (const extra of [[], ['--expires-at', '2031-01-01T00:00:00Z', '--name', 'cli made']]) {
    const c = await runCli(['tokens', 'create', '--rate-limit', '50', '--route', '/api/v1/users/*', ...extra])
    t.equal(c.code, 0, c.err)
    const rec = JSON.parse(c.out) as { api_key: string, id: string }
    keys.push(rec.api_key)
    ids.push(rec.id)
  }
  // CLI import, from stdin
  const imported = ['imported-key-' + randomBytes(12).toString('base64url'), 'Imp+or/ted~Key.' + randomBytes(9).toString('base64') + '==']
  const imp = await runCli(['tokens', 'import', '-'], JSON.stringify(imported.map((k) => ({ api_key: k, rate_limit: 50, allowed_routes: ['/api/v1/users/*'] }))))
  t.equal(imp.code, 0, imp.err)
  keys.push(...imported)
  // The store, as the CLI and the admin API use it
  const store = new TokenStore(r, 'portcullis:')
  const direct = await store.create({ rate_limit: 50, allowed_routes: ['/api/v1/users/*'], name: 'store made' })
  keys.push(direct.api_key)
  // The admin API
  for (let i = 0; i < 2; i++) {
    const res = await request(gw.url + '/admin/tokens', {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ rate_limit: 50, burst: 10, allowed_routes: ['/api/v1/users/*'] })
    })
    t.equal(res.statusCode, 201)
    const rec = await res.body.json() as { api_key: string, id: string }
    keys.push(rec.api_key)
    ids.push(rec.id)
  }
  t.equal(new Set(keys).size, 7, 'seven distinct keys')

  // Use every token through the gateway, so limiter state exists for each.
  for (const k of keys) {
    const res = await request(gw.url + '/api/v1/users/1', { headers: { authorization: `Bearer ${k}` } })
    t.equal(res.statusCode, 200, 'the token works')
    await res.body.dump()
  }
  // Revoke one by key (the CLI accepts a plain key) and one by id.
  t.equal((await runCli(['tokens', 'revoke', keys[0] as string])).code, 0)
  const del = await request(gw.url + `/admin/tokens/${ids[3] as string}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(del.statusCode, 204)
  await del.body.dump()

  const dump = await dumpAll(r)
  // 5 records and the index; limiter keys expire as soon as their bucket is full again.
  t.ok(dump.keys.length >= 6, `${dump.keys.length} Redis keys (records, limiters, index)`)
  const everything = [...dump.keys, ...dump.values]
  for (const k of [...keys, ADMIN]) {
    const bare = k.startsWith('pc_') ? k.slice(3) : k
    const hits = everything.filter((s) => s.includes(bare))
    t.same(hits, [], `no key name or value contains ${k.slice(0, 6)}…`)
  }
  // What is there instead: the digest, as a hash tag of the record and limiter keys.
  const live = keys.slice(1, 6) // keys[0] and keys[6] (ids[3]) were revoked
  for (const k of live) {
    t.ok(dump.keys.includes(`portcullis:{${digestApiKey(k)}}:token`), 'the record is stored under the digest')
  }
  for (const k of [keys[0], keys[6]] as string[]) {
    t.notOk(dump.keys.some((name) => name.includes(digestApiKey(k))), 'a revoked key left nothing behind')
  }

  // The digests are not logged either.
  for (const k of keys) {
    const d = digestApiKey(k)
    t.notOk(gw.logs.lines.some((l) => l.includes(d) || l.includes(k)), 'no log line carries a key or its digest')
  }
})
