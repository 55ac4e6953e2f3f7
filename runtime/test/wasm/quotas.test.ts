import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { host, requiredCapabilities } from '../../src/hosts/wasm/index.ts'
import { FilterError } from '../../src/pipeline/filter.ts'
import { wat } from './wat.ts'
import { PRELUDE, makeArtifact, makeDef, makeServices, makeStream } from './fixtures.ts'
import { bodyFilter, headerFilter, hostile, needsCallout, rustLike, stateFilter, trapIn } from './modules.ts'

/** Counts to $n (param) in a loop: cheap per iteration, so wall time grows without much fuel. */
const counter = `(module ${PRELUDE}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $i i32)
    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 30000000))))
    (i32.const 0)))`

function fuelPerRequest(services: ReturnType<typeof makeServices>, name: string): () => number {
  let last = 0
  return () => {
    const m = services.metrics.histogram('omnirelay_filter_fuel_used', '', ['filter'], []).labels(name).snapshot()
    const d = m.sum - last
    last = m.sum
    return d
  }
}

describe('wasm host: quotas', () => {
  it('fuel is deterministic: the same request on a fresh per-request instance uses exactly the same fuel', async () => {
    for (const src of [headerFilter, bodyFilter]) {
      const services = makeServices()
      const factory = await host.createFactory(makeDef('d', { isolation: 'per-request' }), makeArtifact(await wat(src)), services)
      const delta = fuelPerRequest(services, 'd')
      const used: number[] = []
      for (let i = 0; i < 5; i++) {
        const s = makeStream([[':method', 'POST'], [':path', '/same'], ['x-in', 'same']])
        const f = factory.createStream(s)
        f.onRequestHeaders?.(false)
        s.requestBody = new TextEncoder().encode('the same body every time')
        f.onRequestBody?.(s.requestBody.length, true)
        f.onDone!()
        used.push(delta())
      }
      expect(used[0]).toBeGreaterThan(0)
      expect(new Set(used).size).toBe(1)
    }
  })

  const asFilter = new URL('../../../examples/filters/add-headers/build/filter.wasm', import.meta.url)
  it.skipIf(!existsSync(asFilter))('fuel is deterministic for an AssemblyScript filter on per-request instances (examples built)', async () => {
    const services = makeServices()
    const caps = ['headers:read', 'headers:write', 'log'] as const
    const config = { request: { add: { 'x-a': '1' }, remove: ['x-b'] }, response: { add: { 'x-c': '2' } } }
    const bytes = new Uint8Array(readFileSync(asFilter))
    const factory = await host.createFactory(makeDef('as', { isolation: 'per-request', config, capabilities: [...caps] }), makeArtifact(bytes, [...caps]), services)
    const delta = fuelPerRequest(services, 'as')
    const used: number[] = []
    for (let i = 0; i < 5; i++) {
      const s = makeStream([[':method', 'GET'], [':path', '/x'], ['x-b', 'gone']])
      const f = factory.createStream(s)
      f.onRequestHeaders!(true)
      s.responseHeaders.set(':status', '200')
      f.onResponseHeaders!(false)
      f.onDone!()
      expect(s.requestHeaders.get('x-a')).toBe('1')
      used.push(delta())
    }
    expect(used[0]).toBeGreaterThan(1000)
    expect(new Set(used).size).toBe(1)
  })

  it('a request budget is shared across hooks and traps only that filter', async () => {
    const services = makeServices()
    const factory = await host.createFactory(makeDef('b', { quotas: { fuel: 5000 } }), makeArtifact(await wat(bodyFilter)), services)
    const s = makeStream()
    const f = factory.createStream(s)
    s.requestBody = new Uint8Array(10_000).fill(97)
    expect(() => f.onRequestBody!(10_000, true)).toThrow(expect.objectContaining({ code: 'fuel_exhausted', filter: 'b' }))
    f.onDone!()
    const ok = makeStream()
    const f2 = factory.createStream(ok)
    ok.requestBody = new TextEncoder().encode('ab')
    expect(f2.onRequestBody!(2, true)).toBe(0)
    expect(new TextDecoder().decode(ok.requestBody)).toBe('AB')
  })

  it('host calls cost fuel: a loop around a host call is stopped too', async () => {
    const hostLoop = `(module (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32))) ${PRELUDE}
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (loop $l (drop (call $pairs (i32.const 0) (i32.const 2048) (i32.const 2052))) (global.set $heap (i32.const 32768)) (br $l))
        (i32.const 0)))`
    const services = makeServices()
    const factory = await host.createFactory(makeDef('hl', { quotas: { fuel: 1_000_000, timeoutMs: 5000 } }), makeArtifact(await wat(hostLoop)), services)
    const t = performance.now()
    expect(() => factory.createStream(makeStream()).onRequestHeaders!(true)).toThrow(expect.objectContaining({ code: 'fuel_exhausted' }))
    expect(performance.now() - t).toBeLessThan(500)
  })

  it('the watchdog fails a call that ran past timeoutMs, after the fact, and discards the instance', async () => {
    const services = makeServices()
    const def = makeDef('w', { quotas: { fuel: 1e12, timeoutMs: 5 } })
    const factory = await host.createFactory(def, makeArtifact(await wat(counter)), services)
    const f = factory.createStream(makeStream())
    let err: unknown
    try {
      f.onRequestHeaders!(true)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(FilterError)
    expect((err as FilterError).code).toBe('timeout')
    expect(services.metrics.render()).toContain('omnirelay_wasm_failures_total{filter="w",code="timeout"} 1')
    expect(services.metrics.render()).toContain('omnirelay_wasm_instances_created_total{filter="w"} 1')
    // next request: a fresh instance (still too slow for 5 ms, but it is a new one)
    expect(() => factory.createStream(makeStream()).onRequestHeaders!(true)).toThrow()
    expect(services.metrics.render()).toContain('omnirelay_wasm_instances_created_total{filter="w"} 2')
  })

  it('memory: growth past the cap is memory_exceeded; a module that starts above the cap is refused', async () => {
    const services = makeServices()
    const factory = await host.createFactory(makeDef('m', { quotas: { memoryBytes: 3 * 65536 } }), makeArtifact(await wat(hostile('bomb'))), services)
    expect(() => factory.createStream(makeStream([[':method', 'GET'], [':path', '/bad']])).onRequestHeaders!(true)).toThrow(
      expect.objectContaining({ code: 'memory_exceeded' }),
    )
    const big = await wat(`(module (memory (export "memory") 8) (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0)))`)
    await expect(host.createFactory(makeDef('big', { quotas: { memoryBytes: 4 * 65536 } }), makeArtifact(big), services)).rejects.toMatchObject({
      code: 'memory_exceeded',
    })
  })

  it('shared instance recovers after a failure with a fresh instance (state reset)', async () => {
    const services = makeServices()
    const factory = await host.createFactory(makeDef('r'), makeArtifact(await wat(hostile('loop'))), services)
    expect(() => factory.createStream(makeStream([[':method', 'GET'], [':path', '/bad']])).onRequestHeaders!(true)).toThrow(
      expect.objectContaining({ code: 'fuel_exhausted' }),
    )
    expect(factory.createStream(makeStream()).onRequestHeaders!(true)).toBe(0)
  })
})

describe('wasm host: capabilities', () => {
  it('requiredCapabilities maps imports to grants', async () => {
    const caps = (src: string) => wat(src).then((b) => requiredCapabilities(new WebAssembly.Module(b)))
    expect(await caps(headerFilter)).toEqual(['headers:read', 'headers:write', 'log'])
    expect(await caps(stateFilter)).toEqual(['headers:write', 'metrics', 'properties', 'shared-data', 'shared-queue'])
    expect(await caps(rustLike)).toEqual(['headers:read', 'headers:write', 'log', 'properties'])
    await expect(caps(`(module (import "env" "nope" (func)))`)).rejects.toMatchObject({ code: 'unknown_import', names: ['env.nope (function)'] })
  })

  it('refuses a module whose imports exceed the grant, naming the missing grants', async () => {
    const services = makeServices()
    const err = await host.createFactory(makeDef('c', { capabilities: ['headers:read'] }), makeArtifact(await wat(needsCallout)), services).catch((e) => e)
    expect(err.code).toBe('capability_denied')
    expect(err.message).toContain('http-callout (for proxy_http_call)')
    expect(err.message).toContain('log (for proxy_log)')
  })

  it('the effective grant is the intersection of config and bundle', async () => {
    const services = makeServices()
    const err = await host
      .createFactory(makeDef('i'), makeArtifact(await wat(needsCallout), ['log', 'headers:read']), services)
      .catch((e) => e)
    expect(err.code).toBe('capability_denied')
    expect(err.message).toContain('http-callout')
    expect(err.message).not.toContain('log (for')
  })
})

describe('wasm host: crash loops', () => {
  it('rate-limits instance rebuilds when every request fails (fail-closed)', async () => {
    const services = makeServices()
    // Traps at once, so 15 requests fit well inside the one-second window.
    const factory = await host.createFactory(makeDef('cl'), makeArtifact(await wat(trapIn('request_headers'))), services)
    const codes: string[] = []
    for (let i = 0; i < 15; i++) {
      try {
        factory.createStream(makeStream([[':method', 'GET'], [':path', '/bad']])).onRequestHeaders!(true)
      } catch (e) {
        codes.push((e as FilterError).code)
      }
    }
    expect(codes.filter((c) => c === 'trap').length).toBeLessThanOrEqual(11)
    expect(codes).toContain('unavailable')
    const created = Number(/omnirelay_wasm_instances_created_total\{filter="cl"\} (\d+)/.exec(services.metrics.render())![1])
    expect(created).toBeLessThanOrEqual(11)
  })
})
