import { test } from 'tap'
import { RedisServer } from '../helpers/redis.js'

test('the harness starts, kills and restarts a real redis-server on a free port', async (t) => {
  const server = await new RedisServer().start()
  t.teardown(() => server.close())
  const c = server.client()
  t.equal(await c.ping(), 'PONG')
  c.disconnect()
  await server.stop()
  await server.start()
  const c2 = server.client()
  t.equal(await c2.ping(), 'PONG')
  c2.disconnect()
})
