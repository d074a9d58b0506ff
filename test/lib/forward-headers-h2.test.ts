// The HTTP/2 side of the request header rules: :authority as Host, pseudo-headers never forwarded.
import t from 'tap'
import type { IncomingHttpHeaders } from 'node:http'
import { requestAuthority, upstreamRequestHeaders } from '../../src/lib/forward-headers.js'

t.test('requestAuthority: :authority wins, Host otherwise, empty when neither', async (t) => {
  const rows: Array<[IncomingHttpHeaders, string]> = [
    [{ ':authority': 'api.example:8443' }, 'api.example:8443'],
    [{ ':authority': 'api.example', host: 'other.example' }, 'api.example'],
    [{ ':authority': '', host: 'h1.example' }, 'h1.example'],
    [{ host: 'h1.example' }, 'h1.example'],
    [{}, '']
  ]
  for (const [headers, want] of rows) t.equal(requestAuthority(headers), want, JSON.stringify(headers))
})

t.test('pseudo-headers are dropped before forwarding; the gateway\'s own are set', async (t) => {
  const original: IncomingHttpHeaders = { ':method': 'GET', ':path': '/a', ':scheme': 'https', ':authority': 'gw.example', ':protocol': 'websocket', 'x-kept': '1' }
  const out = upstreamRequestHeaders({ ...original }, original, {
    remoteAddress: '10.0.0.1', protocol: 'https', host: requestAuthority(original), trustProxy: false, requestId: 'r1', consumerId: 'c1'
  })
  t.same(Object.keys(out).filter((n) => n.startsWith(':')), [])
  t.equal(out['x-kept'], '1')
  t.equal(out['x-forwarded-host'], 'gw.example')
  t.equal(out['x-forwarded-proto'], 'https')
})
