// The upstream when nginx is not installed: node:http, 200 with a 100-byte body, keep-alive.
import http from 'node:http'
const body = Buffer.alloc(100, 'x')
const server = http.createServer((req, res) => {
  req.resume()
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' })
  res.end(body)
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'))
process.on('SIGTERM', () => process.exit(0))
