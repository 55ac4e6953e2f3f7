/**
 * Wasm host micro-benchmark (separate from `npm run bench`, which measures whole proxies):
 * CPU per request of one filter driven directly through its FilterFactory with a real
 * PipelineStream, unmetered vs fuel-metered, shared vs per-request isolation; fuel per
 * request; memory per instance.
 *
 *   node --expose-gc --import tsx bench/wasm-host.ts   # N=20000 requests per variant, best of 3
 *   BENCH_N=5000 node --import tsx bench/wasm-host.ts
 *
 * Filters: the AssemblyScript example add-headers (examples/filters, built by `npm run build`;
 * skipped when missing) and the hand-written WAT header filter of runtime/test/wasm.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createSharedData, createSharedQueues } from '../runtime/src/hosts/shared-state/index.ts'
import { createWasmHost } from '../runtime/src/hosts/wasm/index.ts'
import { silentLogger } from '../runtime/src/observability/logger.ts'
import { MetricsRegistry } from '../runtime/src/observability/metrics.ts'
import type { Capability, FilterDefinition, FilterFactory, Isolation, StreamFilter } from '../runtime/src/pipeline/filter.ts'
import { HeaderMap } from '../runtime/src/pipeline/header-map.ts'
import { PipelineStream } from '../runtime/src/pipeline/stream.ts'
import { instrumentFuel, loadBinaryen } from '../runtime/src/sandbox/fuel.ts'
import { headerFilter } from '../runtime/test/wasm/modules.ts'
import { wat } from '../runtime/test/wasm/wat.ts'

const N = Number(process.env.BENCH_N ?? 20_000)
const REQ: [string, string][] = [
  [':method', 'GET'],
  [':path', '/api/v1/items?x=1'],
  [':authority', 'example.com'],
  ['user-agent', 'curl/8.5'],
  ['accept', '*/*'],
  ['x-request-id', '5f0c7a52-33e4-4d1c-9d65-1b1e6a0c0f1a'],
  ['x-in', 'value'],
  ['x-internal-debug', '1'],
]
const RESP: [string, string][] = [[':status', '200'], ['content-type', 'application/json'], ['server', 'upstream']]

interface Subject {
  name: string
  bytes: Uint8Array
  config: unknown
  caps: Capability[]
}

async function subjects(): Promise<Subject[]> {
  const out: Subject[] = []
  const as = fileURLToPath(new URL('../examples/filters/add-headers/build/filter.wasm', import.meta.url))
  if (existsSync(as)) {
    out.push({
      name: 'as-add-headers',
      bytes: new Uint8Array(readFileSync(as)),
      config: { request: { add: { 'x-added-by': 'omnirelay' }, set: { 'x-env': 'prod' }, remove: ['x-internal-debug'] }, response: { add: { 'x-served-by': 'omnirelay' }, remove: ['server'] } },
      caps: ['headers:read', 'headers:write', 'log'],
    })
  } else console.error(`(skipping the AssemblyScript filter: ${as} not built; run npm run build)`)
  out.push({ name: 'wat-header', bytes: await wat(headerFilter), config: undefined, caps: ['headers:read', 'headers:write', 'log'] })
  return out
}

async function factory(s: Subject, meter: boolean, isolation: Isolation, metrics = new MetricsRegistry()): Promise<FilterFactory> {
  const def: FilterDefinition = {
    name: s.name,
    kind: 'wasm',
    config: s.config,
    failurePolicy: 'fail-closed',
    isolation,
    quotas: { fuel: 10_000_000, memoryBytes: 16 << 20, timeoutMs: 1000 },
    capabilities: s.caps,
  }
  return createWasmHost({ meter }).createFactory(
    def,
    { kind: 'wasm', bytes: s.bytes, digest: createHash('sha256').update(s.bytes).digest('hex'), capabilities: s.caps, unsigned: true },
    { log: silentLogger, metrics, sharedData: createSharedData(), sharedQueues: createSharedQueues(), epoch: 1, httpCall: () => Promise.reject(new Error('none')) },
  )
}

function request(f: FilterFactory | undefined): void {
  const s = new PipelineStream({ requestHeaders: HeaderMap.fromPairs(REQ), responseHeaders: HeaderMap.fromPairs(RESP) })
  if (!f) return
  const fl: StreamFilter = f.createStream(s)
  fl.onRequestHeaders?.(true)
  fl.onResponseHeaders?.(false)
  fl.onLog?.()
  fl.onDone?.()
}

/** CPU µs per request (user+system), after a warm-up; best of 3 rounds (the machine is shared). */
function measure(f: FilterFactory | undefined): number {
  for (let i = 0; i < 3000; i++) request(f)
  let best = Infinity
  for (let round = 0; round < 3; round++) {
    const t = process.cpuUsage()
    for (let i = 0; i < N; i++) request(f)
    const u = process.cpuUsage(t)
    best = Math.min(best, (u.user + u.system) / N)
  }
  return best
}

function fuelPerRequest(metrics: MetricsRegistry, name: string): number {
  const s = metrics.histogram('omnirelay_filter_fuel_used', '', ['filter'], []).labels(name).snapshot()
  return s.count ? s.sum / s.count : 0
}

/** Live instances (per-request pool, all held at once): RSS growth per instance (linear memory + V8 instance). */
async function memoryPerInstance(s: Subject): Promise<{ rssKiB: number; linearKiB: number }> {
  const f = await factory(s, true, 'per-request')
  const held: StreamFilter[] = []
  const count = 200
  globalThis.gc?.()
  const before = process.memoryUsage()
  for (let i = 0; i < count; i++) {
    const st = new PipelineStream({ requestHeaders: HeaderMap.fromPairs(REQ) })
    const fl = f.createStream(st)
    fl.onRequestHeaders?.(true)
    held.push(fl)
  }
  globalThis.gc?.()
  const after = process.memoryUsage()
  const stats = (f as unknown as { stats(): { instances: number; linearMemoryBytes: number } }).stats()
  for (const fl of held) fl.onDone?.()
  await f.close()
  return { rssKiB: (after.rss - before.rss) / count / 1024, linearKiB: stats.linearMemoryBytes / stats.instances / 1024 }
}

const all = await subjects()
const tb = performance.now()
await loadBinaryen()
console.log(`binaryen import: ${(performance.now() - tb).toFixed(0)} ms (once per process; the disk cache skips it)`)
for (const s of all) {
  const r = await instrumentFuel(s.bytes)
  console.log(`${s.name}: ${s.bytes.length} B -> ${r.bytes.length} B metered, instrumented in ${r.stats.ms.toFixed(1)} ms (${r.stats.meteredFunctions}/${r.stats.functions} functions, ${r.stats.loops} loops)`)
}
// Memory first, on a quiet heap (run with --expose-gc for steadier figures).
const mems = new Map<string, { rssKiB: number; linearKiB: number }>()
for (const s of all) await memoryPerInstance(s) // warm-up: instrumentation, compilation, allocator settling
for (const s of all) mems.set(s.name, await memoryPerInstance(s))
const baseline = measure(undefined)
console.log(`requests per variant: ${N}; baseline (stream construction only): ${baseline.toFixed(2)} µs`)
console.log('filter            variant                     µs/req CPU   added µs   fuel/req')
for (const s of all) {
  const rows: [string, boolean, Isolation][] = [
    ['unmetered shared', false, 'shared'],
    ['metered shared', true, 'shared'],
    ['metered per-request', true, 'per-request'],
  ]
  for (const [label, meter, iso] of rows) {
    const metrics = new MetricsRegistry()
    const f = await factory(s, meter, iso, metrics)
    const us = measure(f)
    const fuel = meter ? fuelPerRequest(metrics, s.name).toFixed(0) : '-'
    console.log(`${s.name.padEnd(17)} ${label.padEnd(27)} ${us.toFixed(2).padStart(10)} ${(us - baseline).toFixed(2).padStart(10)} ${String(fuel).padStart(10)}`)
    await f.close()
  }
  const m = mems.get(s.name)!
  console.log(`${s.name.padEnd(17)} memory per live instance: ${m.linearKiB.toFixed(0)} KiB linear memory; RSS growth ~${m.rssKiB.toFixed(0)} KiB/instance (noisy)`)
}

// A chain of five typical filters (the AssemblyScript examples), each metered, shared isolation.
const examples: Subject[] = []
for (const [name, config, caps] of [
  ['add-headers', all[0]?.config, ['headers:read', 'headers:write', 'log']],
  ['path-deny', { prefixes: ['/admin', '/internal'] }, ['headers:read', 'local-reply', 'metrics', 'log']],
  ['rate-limit', { capacity: 1e12, refillPerSecond: 1, bucket: 'bench' }, ['headers:read', 'shared-data', 'local-reply', 'metrics', 'log']],
] as const) {
  const file = fileURLToPath(new URL(`../examples/filters/${name}/build/filter.wasm`, import.meta.url))
  if (existsSync(file)) examples.push({ name, bytes: new Uint8Array(readFileSync(file)), config, caps: [...caps] })
}
if (examples.length === 3) {
  const chain: FilterFactory[] = []
  for (const [i, s] of [examples[0]!, examples[1]!, examples[2]!, { ...examples[0]!, name: 'add-headers-2' }, examples[1]!].entries()) {
    chain.push(await factory({ ...s, name: `${s.name}-${i}` }, true, 'shared'))
  }
  const runChain = () => {
    const st = new PipelineStream({ requestHeaders: HeaderMap.fromPairs(REQ), responseHeaders: HeaderMap.fromPairs(RESP) })
    const fs = chain.map((f) => f.createStream(st))
    for (const f of fs) f.onRequestHeaders?.(true)
    for (let i = fs.length - 1; i >= 0; i--) fs[i]!.onResponseHeaders?.(false)
    for (const f of fs) f.onLog?.()
    for (const f of fs) f.onDone?.()
  }
  for (let i = 0; i < 2000; i++) runChain()
  let us = Infinity
  for (let round = 0; round < 3; round++) {
    const t = process.cpuUsage()
    for (let i = 0; i < N; i++) runChain()
    const u = process.cpuUsage(t)
    us = Math.min(us, (u.user + u.system) / N)
  }
  console.log(`chain of 5 AS filters (add-headers, path-deny, rate-limit, add-headers, path-deny), metered: ${us.toFixed(2)} µs/req CPU, ${(us - baseline).toFixed(2)} µs added`)
  for (const f of chain) await f.close()
}
