// A tiny demo app for the edge example: answers JSON describing the request it received,
// so you can see what the proxy added (x-forwarded-for, x-request-id, via...).
import http from 'node:http'

export function startDemoUpstream(port = 3001, host = '127.0.0.1') {
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('ok\n')
      return
    }
    let size = 0
    req.on('data', (c) => (size += c.length))
    req.on('end', () => {
      const body = JSON.stringify(
        { message: 'Hello from the demo upstream, through OmniRelay', method: req.method, path: req.url, bodyBytes: size, headers: req.headers },
        null,
        2,
      )
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(body + '\n')
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(server))
  })
}
