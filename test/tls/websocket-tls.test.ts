// WebSocket over TLS: HTTP/1.1 clients of the TLS listener (ALPN http/1.1) upgrade as on the plain
// one: Node's Http2SecureServer with allowHTTP1 hands the upgrade to the gateway's handler.
import t from 'tap'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { connect as tlsConnect } from 'node:tls'
import WebSocket from 'ws'
import { sharedRedis } from '../helpers/redis.js'
import { startGateway, CALM } from '../helpers/gateway.js'
import { createTestToken } from '../helpers/tokens.js'
import { WsUpstream } from '../helpers/ws-upstream.js'
import { rawHandshake, nextMessage, closedWithin } from '../helpers/ws-client.js'
import { makeTestCertificate } from '../helpers/tls.js'
import { h2Request } from '../helpers/tls-clients.js'

const cert = makeTestCertificate()
const redis = await sharedRedis()
const up = await new WsUpstream().start()
const token = await createTestToken(redis.url)
const gw = await startGateway({ ...CALM, REDIS_URL: redis.url, ROUTES: `/ws=${up.url}`, TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile })
t.teardown(async () => {
  await gw.app.close()
  await up.close()
  await redis.close()
  cert.remove()
})
const port = Number(new URL(gw.url).port)

t.test('wss:// through the gateway: text, binary and 1 MB frames both ways; https upstream headers', async (t) => {
  const before = up.upgrades.length
  const ws = new WebSocket(`wss://127.0.0.1:${port}/ws/chat`, { ca: cert.cert, headers: { authorization: token.bearer }, maxPayload: 16 * 1024 * 1024 })
  await once(ws, 'open')
  const seen = up.upgrades[before]
  t.equal(seen?.headers['x-forwarded-proto'], 'https')
  t.equal(seen?.headers['x-forwarded-host'], `127.0.0.1:${port}`)
  t.equal(seen?.headers.authorization, undefined)
  t.equal(seen?.headers['x-consumer-id'], token.id)
  ws.send('hello')
  const text = await nextMessage(ws)
  t.same([text.data.toString('utf8'), text.isBinary], ['hello', false])
  const big = randomBytes(1024 * 1024)
  ws.send(big)
  const bin = await nextMessage(ws)
  t.ok(bin.isBinary)
  t.ok(bin.data.equals(big), '1 MB binary frame intact')
  ws.close(1000)
  t.equal(await closedWithin(ws, 5000), 1000)
})

t.test('a refused upgrade over TLS: 401 with the JSON body, nothing upstream', async (t) => {
  const before = up.connections
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: cert.cert, ALPNProtocols: ['http/1.1'] })
  await once(socket, 'secureConnect')
  socket.write(rawHandshake('/ws/chat'))
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString('utf8') })
  await once(socket, 'close')
  t.match(text, /^HTTP\/1\.1 401 /)
  t.match(text, /"code":"TOKEN_MISSING"/)
  t.equal(up.connections, before, 'no upstream connection')
})

t.test('h2 clients of the same listener are still served', async (t) => {
  const a = await h2Request(gw.url, cert.cert, { path: '/ws/plain', headers: { authorization: token.bearer } })
  t.equal(a.alpn, 'h2')
  t.equal(a.status, 200)
  t.equal(a.body.toString('utf8'), 'plain')
})
