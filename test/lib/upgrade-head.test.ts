// The pure pieces of the upgrade path: telling a WebSocket handshake apart, writing a response
// head that no header value can split, and decoding the tunnel re-check reply.
import t from 'tap'
import { announcesBody, headerLines, isWebSocketUpgrade, rawHeaderLines, responseHead } from '../../src/lib/upgrade-head.js'
import { decodeTunnelCheck } from '../../src/lib/tunnel-check.js'
import { shutdownCloseDelay } from '../../routes/websocket-tunnels.js'

t.test('isWebSocketUpgrade', async (t) => {
  const rows: Array<[string | undefined, string | undefined, boolean]> = [
    ['GET', 'websocket', true], ['GET', 'WebSocket', true], ['GET', 'h2c, websocket', true],
    ['GET', 'h2c', false], ['GET', undefined, false], ['POST', 'websocket', false], [undefined, 'websocket', false],
    ['GET', 'websockets', false], ['GET', '', false]
  ]
  for (const [method, upgrade, want] of rows) {
    t.equal(isWebSocketUpgrade(method, upgrade === undefined ? {} : { upgrade }), want, `${String(method)} ${String(upgrade)}`)
  }
})

t.test('announcesBody', async (t) => {
  t.equal(announcesBody({}), false)
  t.equal(announcesBody({ 'content-length': '0' }), false)
  t.equal(announcesBody({ 'content-length': '2' }), true)
  t.equal(announcesBody({ 'transfer-encoding': 'chunked' }), true)
})

t.test('responseHead writes only what HTTP/1.1 can carry', async (t) => {
  t.equal(responseHead(101, [['Upgrade', 'websocket'], ['Connection', 'Upgrade']], 'Switching Protocols'),
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
  t.equal(responseHead(403, []), 'HTTP/1.1 403 Forbidden\r\n\r\n', 'reason from the status when none is given')
  t.equal(responseHead(403, [], 'No\r\nX-Evil: 1'), 'HTTP/1.1 403 Forbidden\r\n\r\n', 'a reason with CR/LF is replaced')
  t.equal(responseHead(200, [['x-a', 'v\r\nx-evil: 1'], ['bad name', 'v'], ['x-ok', 'fine']]), 'HTTP/1.1 200 OK\r\nx-ok: fine\r\n\r\n',
    'lines that could split the head are left out')
  t.equal(responseHead(599, []), 'HTTP/1.1 599 \r\n\r\n')
})

t.test('headerLines and rawHeaderLines', async (t) => {
  t.same(headerLines({ a: '1', b: ['2', '3'], c: undefined, d: 4 }), [['a', '1'], ['b', '2'], ['b', '3'], ['d', '4']])
  t.same(rawHeaderLines(['Upgrade', 'websocket', 'Set-Cookie', 'a', 'Set-Cookie', 'b']), [['Upgrade', 'websocket'], ['Set-Cookie', 'a'], ['Set-Cookie', 'b']])
})

t.test('decodeTunnelCheck', async (t) => {
  t.same(decodeTunnelCheck([0]), { status: 'unknown' })
  t.same(decodeTunnelCheck([1]), { status: 'expired' })
  t.same(decodeTunnelCheck([2]), { status: 'unchanged' })
  t.same(decodeTunnelCheck([3, '["/*"]', '0123456789abcdef']), { status: 'changed', routes: '["/*"]', routesRev: '0123456789abcdef' })
  for (const bad of [null, 'x', [], [4], [0, 'x'], [3, '[]'], [3, 1, ''], [2, 'x']]) {
    t.throws(() => decodeTunnelCheck(bad), JSON.stringify(bad))
  }
})

t.test('shutdownCloseDelay leaves a margin before the grace deadline', async (t) => {
  t.equal(shutdownCloseDelay(10_000), 9000)
  t.equal(shutdownCloseDelay(3000), 2250)
  t.equal(shutdownCloseDelay(1000), 750)
  t.equal(shutdownCloseDelay(0), 0)
  t.equal(shutdownCloseDelay(60_000), 59_000)
})
