#!/usr/bin/env node
// The sidecar example: an app (:3002), a mesh service it calls (:3003), and OmniRelay as
// its sidecar (inbound :15006, outbound :15001, admin :15000).
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import { register } from 'tsx/esm/api'

register()
const { startProxy } = await import('../../runtime/src/index.ts')

const listen = (server, port) => new Promise((ok) => server.listen(port, '127.0.0.1', () => ok(server)))

// The "orders" service somewhere in the mesh.
const orders = await listen(http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ orders: [1, 2, 3], sawRequestId: req.headers['x-request-id'] }) + '\n')
}), 3003)

// The app: calls orders through its sidecar's outbound listener (Host: orders).
const app = await listen(http.createServer((req, res) => {
  http.get({ host: '127.0.0.1', port: 15001, path: '/orders', headers: { host: 'orders', 'x-request-id': req.headers['x-request-id'] } }, (up) => {
    let body = ''
    up.on('data', (d) => (body += d))
    up.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ app: 'hello from the app', inboundVia: req.headers.via, fromOrders: JSON.parse(body) }, null, 2) + '\n')
    })
  }).on('error', () => {
    res.writeHead(502)
    res.end()
  })
}), 3002)

const proxy = await startProxy(fileURLToPath(new URL('./omnirelay.yaml', import.meta.url)), { watch: true, sighup: true })
process.stderr.write(`
Sidecar example running.
  curl localhost:15006/     -> inbound listener -> app -> outbound listener -> orders
  curl localhost:15000/metrics
`)
const stop = async () => {
  await proxy.close()
  app.close()
  orders.close()
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
