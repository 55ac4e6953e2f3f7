// OmniRelay for the benchmark: no filters, access log off, one route to the upstream.
// Usage: node omnirelay-proxy.js UPSTREAM_PORT WORKERS  -> prints {"port":N} when listening.
import { register } from 'tsx/esm/api'
register()
const { startProxy } = await import('../runtime/src/index.ts')

const upstreamPort = Number(process.argv[2])
const workers = process.argv[3] === 'auto' ? 'auto' : Number(process.argv[3] ?? 1)
const proxy = await startProxy(
  {
    workers,
    logLevel: 'error',
    accessLog: process.env.BENCH_ACCESS_LOG ?? 'off',
    listeners: [{ name: 'main', address: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? 0) }],
    clusters: [{ name: 'up', endpoints: [`127.0.0.1:${upstreamPort}`], maxConnectionsPerEndpoint: 64 }],
    routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'up' }],
  },
  { workers: true },
)
process.stdout.write(JSON.stringify({ port: proxy.address('main').port }) + '\n')
process.on('SIGTERM', () => void proxy.close().finally(() => process.exit(0)))
