/**
 * The SDK against the real Wasm host (runtime/src/hosts/wasm) with the real HttpStream:
 * every API area the example filters do not cover, plus what the SDK costs per request.
 */
import { createHash } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSharedData, createSharedQueues } from '../../runtime/src/hosts/shared-state/index.ts'
import type { HostServices } from '../../runtime/src/hosts/host-services.ts'
import type { WasmFilterFactory } from '../../runtime/src/hosts/wasm/factory.ts'
import { host } from '../../runtime/src/hosts/wasm/index.ts'
import { createLogger } from '../../runtime/src/observability/logger.ts'
import { MetricsRegistry } from '../../runtime/src/observability/metrics.ts'
import type { Capability, FilterDefinition, FilterFactory } from '../../runtime/src/pipeline/filter.ts'
import { HeaderMap } from '../../runtime/src/pipeline/header-map.ts'
import { FilterStatus } from '../../runtime/src/pipeline/phases.ts'
import { createStreamInfo, PipelineStream } from '../../runtime/src/pipeline/stream.ts'
import { buildFilter } from '../build.js'

const here = dirname(fileURLToPath(import.meta.url))
const enc = new TextEncoder()
const dec = new TextDecoder()
const factories: FilterFactory[] = []
const wasm: Record<string, Uint8Array> = {}

beforeAll(async () => {
  for (const name of ['kitchen-sink', 'noop']) {
    const dir = join(here, 'fixtures', name)
    wasm[name] = (await buildFilter({ entry: join(dir, 'assembly', 'index.ts'), outFile: join(dir, 'build', 'filter.wasm'), cache: true })).wasm
  }
})
afterAll(() => Promise.all(factories.map((f) => f.close())))

async function load(name: string, config: unknown, capabilities: Capability[], isolation: FilterDefinition['isolation'] = 'shared') {
  const metrics = new MetricsRegistry()
  const logs: { msg: string; [k: string]: unknown }[] = []
  const services: HostServices = {
    log: createLogger({ level: 'debug', write: (l) => logs.push(JSON.parse(l)) }),
    metrics,
    sharedData: createSharedData(),
    sharedQueues: createSharedQueues(),
    epoch: 7,
    httpCall: () => Promise.reject(new Error('no clusters here')),
  }
  const bytes = wasm[name]!
  const factory = await host.createFactory(
    { name, kind: 'wasm', module: `${name}.wasm`, config, failurePolicy: 'fail-closed', isolation, quotas: { timeoutMs: 2000 }, capabilities },
    { kind: 'wasm', bytes, digest: createHash('sha256').update(bytes).digest('hex'), capabilities, unsigned: true },
    services,
  )
  factories.push(factory)
  return { factory, metrics, logs }
}

const ALL: Capability[] = ['headers:read', 'headers:write', 'body:read', 'body:write', 'properties', 'metrics', 'shared-queue', 'timers', 'log']

function metric(metrics: MetricsRegistry, line: string): number {
  const found = metrics.render().split('\n').find((l) => l.startsWith(line))
  return found ? Number(found.slice(line.length + 1)) : NaN
}

describe('the SDK in the Wasm host', () => {
  it('reads properties, header pairs; buffers and rewrites bodies; replaces maps; adds trailers', async () => {
    const { factory, metrics, logs } = await load('kitchen-sink', {}, ALL)
    const s = new PipelineStream({
      info: createStreamInfo({ epoch: 7 }),
      requestHeaders: HeaderMap.fromPairs([[':method', 'POST'], [':path', '/items?id=1'], [':authority', 'a']]),
    })
    const f = factory.createStream(s)
    expect(f.onRequestHeaders!(false)).toBe(FilterStatus.Continue)
    expect(s.requestHeaders.get('x-path-property')).toBe('/items?id=1')
    expect(s.requestHeaders.get('x-epoch')).toBe('7')
    expect(s.requestHeaders.get('x-header-count')).toBe('5') // 3 + the two set before
    s.requestBody = enc.encode('hello ')
    expect(f.onRequestBody!(6, false)).toBe(FilterStatus.Pause)
    s.requestBody = enc.encode('hello world')
    expect(f.onRequestBody!(11, true)).toBe(FilterStatus.Continue)
    expect(dec.decode(s.requestBody)).toBe('HELLO WORLD')
    s.responseHeaders.set(':status', '200')
    s.responseHeaders.set('content-type', 'text/plain')
    expect(f.onResponseHeaders!(false)).toBe(FilterStatus.Continue)
    expect(s.responseHeaders.get('x-replaced')).toBe('all')
    expect(s.responseHeaders.get('content-type')).toBe('text/plain')
    s.responseBody = enc.encode('ok')
    expect(f.onResponseBody!(2, true)).toBe(FilterStatus.Continue)
    expect(dec.decode(s.responseBody)).toBe('ok!')
    s.responseTrailers.set('grpc-status', '0')
    expect(f.onResponseTrailers!()).toBe(FilterStatus.Continue)
    expect(s.responseTrailers.get('x-trailer-seen')).toBe('1')
    f.onLog!()
    f.onDone?.()
    expect(metric(metrics, 'omnirelay_wasm_ks_body_bytes_count{filter="kitchen-sink"}')).toBe(1)
    expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['kitchen-sink configured, random ok', 'done /items?id=1']))
  })

  it('runs an overridden onDelete when its stream ends (no deferred delete)', async () => {
    const { factory, logs } = await load('kitchen-sink', {}, ALL)
    const f = factory.createStream(new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':path', '/']]) }))
    f.onRequestHeaders!(true)
    logs.length = 0
    f.onDone?.()
    expect(logs.map((l) => l.msg)).toEqual(['on_done 2', 'on_delete 2'])
  })

  it('frees contexts whose deletes ride on later stream starts: 20k streams, no growth', async () => {
    const { factory } = await load('noop', {}, ['log'])
    const run = (n: number) => {
      for (let i = 0; i < n; i++) {
        const f = factory.createStream(new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':path', '/']]) }))
        f.onRequestHeaders!(true)
        f.onDone?.()
      }
    }
    run(100)
    const stats = () => (factory as WasmFilterFactory).stats().linearMemoryBytes
    const before = stats()
    // Twenty thousand contexts never deleted would take several more pages.
    run(20_000)
    expect(stats()).toBe(before)
  })

  it('reports a trap through proxy_log (file and line) before the host applies the failure policy', async () => {
    const { factory, logs } = await load('kitchen-sink', {}, ALL)
    const s = new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':path', '/'], ['x-trace', '1']]) })
    const f = factory.createStream(s)
    f.onRequestHeaders!(true)
    f.onDone?.()
    expect(logs.map((l) => l.msg)).toContain('trace: ks trace 42.0')
    const crash = new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':path', '/'], ['x-crash', '1']]) })
    const g = factory.createStream(crash)
    expect(() => g.onRequestHeaders!(true)).toThrow(expect.objectContaining({ code: 'trap' }))
    g.onDone?.()
    expect(logs.map((l) => l.msg)).toContainEqual(expect.stringMatching(/^abort: Index out of range at ~lib\/array\.ts:\d+:\d+$/))
  })

  it('delivers shared-queue items to the root context', async () => {
    const { factory, metrics } = await load('kitchen-sink', {}, ALL)
    for (let i = 0; i < 3; i++) {
      const s = new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':path', `/${i}`]]) })
      const f = factory.createStream(s)
      f.onRequestHeaders!(true)
      f.onDone?.()
    }
    const deadline = Date.now() + 3000
    while (metric(metrics, 'omnirelay_wasm_ks_dequeued_total{filter="kitchen-sink"}') !== 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    expect(metric(metrics, 'omnirelay_wasm_ks_dequeued_total{filter="kitchen-sink"}')).toBe(3)
  })

  it('runs onTick on the configured period', async () => {
    const { metrics } = await load('kitchen-sink', { tickMs: 5 }, ALL)
    const deadline = Date.now() + 3000
    while (!(metric(metrics, 'omnirelay_wasm_ks_ticks{filter="kitchen-sink"}') >= 3) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    expect(metric(metrics, 'omnirelay_wasm_ks_ticks{filter="kitchen-sink"}')).toBeGreaterThanOrEqual(3)
  })

  it('imports only what it uses: a filter without the timers grant is refused', async () => {
    await expect(load('kitchen-sink', {}, ALL.filter((c) => c !== 'timers'))).rejects.toMatchObject({ code: 'capability_denied' })
    // The no-op filter needs nothing but log.
    await expect(load('noop', {}, ['log'])).resolves.toBeDefined()
  })

  it('costs little fuel per request, and exactly the same on fresh per-request instances', async () => {
    const { factory, metrics } = await load('noop', {}, ['log'], 'per-request')
    for (let i = 0; i < 20; i++) {
      const s = new PipelineStream({ requestHeaders: HeaderMap.fromPairs([[':path', '/']]) })
      const f = factory.createStream(s)
      f.onRequestHeaders!(true)
      f.onLog?.()
      f.onDone?.()
    }
    const sum = metric(metrics, 'omnirelay_filter_fuel_used_sum{filter="noop"}')
    const count = metric(metrics, 'omnirelay_filter_fuel_used_count{filter="noop"}')
    expect(count).toBe(20)
    expect(sum / count).toBeLessThan(10_000)
    // Every request starts from the same snapshot: each used the same fuel.
    const buckets = metrics.render().split('\n').filter((l) => l.startsWith('omnirelay_filter_fuel_used_bucket{filter="noop"'))
    const counts = buckets.map((l) => Number(l.split(' ')[1]))
    expect(counts.every((c) => c === 0 || c === 20)).toBe(true)
  })
})
