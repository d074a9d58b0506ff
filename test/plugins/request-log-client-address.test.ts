// clientAddressOf: the request line's `remoteAddress` for requests Fastify never routes (WebSocket
// upgrades) reads TRUST_PROXY exactly as Fastify's `request.ip` does.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { clientAddressOf } from '../../plugins/request-log.js'

const req = (peer: string, xff?: string): IncomingMessage =>
  ({ socket: { remoteAddress: peer }, connection: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage

const rows: Array<[string, boolean | number | string[], IncomingMessage, string]> = [
  ['trust off: the peer, whatever X-Forwarded-For claims', false, req('10.0.0.2', '203.0.113.9'), '10.0.0.2'],
  ['trust on: the left-most address', true, req('10.0.0.2', '203.0.113.9, 10.0.0.1'), '203.0.113.9'],
  ['trust on, no header: the peer', true, req('10.0.0.2'), '10.0.0.2'],
  ['a hop count trusts no peer (as in Fastify)', 1, req('10.0.0.2', '203.0.113.9'), '10.0.0.2'],
  ['a list: a trusted peer passes on the client', ['10.0.0.0/8'], req('10.0.0.2', '203.0.113.9'), '203.0.113.9'],
  ['a list: an untrusted peer is the client', ['10.0.0.0/8'], req('198.51.100.7', '203.0.113.9'), '198.51.100.7'],
  ['a list: stops at the first untrusted hop from the right', ['10.0.0.0/8'], req('10.0.0.2', '203.0.113.9, 198.51.100.7, 10.0.0.1'), '198.51.100.7']
]

for (const [name, trust, r, want] of rows) {
  t.equal(clientAddressOf(trust)(r), want, name)
}
