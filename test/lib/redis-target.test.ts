// How the Redis target is shown to an operator: password masked, even when the URL does not parse.
import t from 'tap'
import { maskRedisUrl, redisTarget } from '../../src/lib/redis-target.js'

const CASES: Array<[string, string]> = [
  ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
  ['redis://user:s3cret@h:6379/2', 'redis://user:***@h:6379/2'],
  ['rediss://:s3cret@h', 'rediss://:***@h'],
  ['redis://s3cret@h:1', 'redis://:***@h:1'],
  ['redis://u:p@ss:w@rd@h:1/0', 'redis://u:***@h:1/0'],
  ['redis://u:s3cret@h:2O379', 'redis://u:***@h:2O379'],
  ['not a url', 'not a url'],
  ['redis://[::1]:6379', 'redis://[::1]:6379']
]

t.test('maskRedisUrl', async (t) => {
  for (const [raw, want] of CASES) t.equal(maskRedisUrl(raw), want, raw)
  for (const raw of ['redis://user:s3cret@h:6379/2', 'redis://u:s3cret@h:2O379', 'redis://s3cret@h:1']) {
    t.notOk(maskRedisUrl(raw).includes('s3cret'), `${raw}: no password`)
  }
})

t.test('redisTarget', async (t) => {
  t.equal(redisTarget({ redisUrl: 'redis://a:pw@h:1/3', redisClusterNodes: null }), 'redis://a:***@h:1/3')
  t.equal(redisTarget({ redisUrl: 'redis://a:pw@h:1', redisClusterNodes: [{ host: 'r0', port: 7000 }, { host: '::1', port: 7001 }] }), 'cluster r0:7000,[::1]:7001')
})
