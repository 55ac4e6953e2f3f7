// The bare baseline: node:http server + undici Pool (64 connections), streaming both ways,
// hop-by-hop headers stripped. What a minimal hand-written Node forwarder costs.
// Usage: node baseline-proxy.js UPSTREAM_PORT  -> prints {"port":N} when listening.
import http from 'node:http'
import { Pool } from 'undici'

const upstreamPort = Number(process.argv[2])
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 64, pipelining: 1 })
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'])

const server = http.createServer((req, res) => {
  const raw = req.rawHeaders
  const headers = []
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase()
    if (!HOP.has(k)) headers.push(k, raw[i + 1])
  }
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
  pool.request({ method: req.method, path: req.url, headers, body: hasBody ? req : null }).then(
    (up) => {
      const out = []
      const h = up.headers
      for (const k in h) if (!HOP.has(k)) out.push(k, h[k])
      res.writeHead(up.statusCode, out)
      up.body.pipe(res)
    },
    () => {
      res.writeHead(502)
      res.end()
    },
  )
})
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'))
process.on('SIGTERM', () => process.exit(0))
