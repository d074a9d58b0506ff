// A tiny demo upstream for compose.yaml: answers every request with JSON describing what it received,
// so `curl` through the gateway shows what was forwarded. Node built-ins only; GET /healthz for Compose.
import { createServer } from 'node:http'

const port = Number(process.env.PORT ?? 3000)

createServer((req, res) => {
  let bytes = 0
  req.on('data', (chunk) => { bytes += chunk.length })
  req.on('end', () => {
    const body = JSON.stringify({ upstream: 'demo', method: req.method, url: req.url, headers: req.headers, bodyBytes: bytes })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
}).listen(port, '0.0.0.0', () => {
  process.stdout.write(`demo upstream listening on ${port}\n`)
})

// Compose sends SIGTERM on `down`: exit at once (PID 1 has no default handler for it).
process.on('SIGTERM', () => process.exit(0))
