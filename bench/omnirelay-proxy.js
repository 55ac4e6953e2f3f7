// OmniRelay for the benchmark: access log off, one route to the upstream, and optionally
// the example AssemblyScript filters (metered, shared instances) on that route.
// Usage: node omnirelay-proxy.js UPSTREAM_PORT WORKERS [none|one|one-unmetered|five|native5]  -> prints {"port":N} when listening.
// one-unmetered: the same filter without fuel instrumentation (startProxy's `meter: false`).
import { register } from 'tsx/esm/api'
import { fileURLToPath } from 'node:url'
register()
const { startProxy } = await import('../runtime/src/index.ts')

const upstreamPort = Number(process.argv[2])
const workers = process.argv[3] === 'auto' ? 'auto' : Number(process.argv[3] ?? 1)
const chain = process.argv[4] ?? 'none'

const wasm = (name) => fileURLToPath(new URL(`../examples/filters/${name}/build/filter.wasm`, import.meta.url))
const quotas = { fuel: 2_000_000, memoryBytes: 1 << 20, timeoutMs: 500 }
// Five typical policy steps: header rewrite, path deny, rate limit (never empty here), and
// two more header rewrites with their own config (request side and response side).
const FILTERS = [
  { name: 'add-headers', kind: 'wasm', module: wasm('add-headers'), capabilities: ['headers:read', 'headers:write', 'log'], quotas, config: { request: { add: { 'x-added-by': 'omnirelay' }, remove: ['x-internal-debug'] }, response: { add: { 'x-served-by': 'omnirelay' } } } },
  { name: 'path-deny', kind: 'wasm', module: wasm('path-deny'), capabilities: ['headers:read', 'local-reply', 'metrics', 'log'], quotas, config: { prefixes: ['/admin', '/internal'] } },
  { name: 'rate-limit', kind: 'wasm', module: wasm('rate-limit'), capabilities: ['headers:read', 'shared-data', 'local-reply', 'metrics', 'log'], quotas, config: { capacity: 1e12, refillPerSecond: 1e9 } },
  { name: 'tenant-headers', kind: 'wasm', module: wasm('add-headers'), capabilities: ['headers:read', 'headers:write', 'log'], quotas, config: { request: { set: { 'x-tenant': 'bench' } } } },
  { name: 'response-headers', kind: 'wasm', module: wasm('add-headers'), capabilities: ['headers:read', 'headers:write', 'log'], quotas, config: { response: { remove: ['server', 'x-powered-by'], set: { 'x-frame-options': 'DENY' } } } },
]
// The pipeline's own cost: five native filters with empty header hooks (no sandbox).
const NOOP = [1, 2, 3, 4, 5].map((i) => ({ name: `noop-${i}`, kind: 'native', module: fileURLToPath(new URL('./noop-filter.mjs', import.meta.url)), capabilities: ['headers:read', 'headers:write'] }))
const filters = chain === 'five' ? FILTERS : chain === 'one' || chain === 'one-unmetered' ? FILTERS.slice(0, 1) : chain === 'native5' ? NOOP : []

const proxy = await startProxy(
  {
    workers,
    logLevel: process.env.BENCH_LOG_LEVEL ?? 'error',
    accessLog: process.env.BENCH_ACCESS_LOG ?? 'off',
    allowUnsigned: filters.length > 0, // load-time verification is not what this measures
    allowNative: chain === 'native5',
    listeners: [{ name: 'main', address: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? 0) }],
    clusters: [{ name: 'up', endpoints: [`127.0.0.1:${upstreamPort}`], maxConnectionsPerEndpoint: 64 }],
    filters,
    routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'up', filters: filters.map((f) => f.name) }],
  },
  { workers: true, meter: chain !== 'one-unmetered' },
)
process.stdout.write(JSON.stringify({ port: proxy.address('main').port }) + '\n')
process.on('SIGTERM', () => void proxy.close().finally(() => process.exit(0)))
