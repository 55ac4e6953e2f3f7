import { describe, expect, it } from 'vitest'
import { MetricsRegistry } from '../../observability/metrics.ts'
import { MetricType, WasmResult } from './abi.ts'
import { GuestMetrics } from './guest-metrics.ts'

describe('GuestMetrics', () => {
  it('defines, increments, records and reads metrics per filter', () => {
    const reg = new MetricsRegistry()
    const g = new GuestMetrics(reg, 'f')
    const c = g.define(MetricType.Counter, 'my.requests')
    expect(c).toBe(1)
    expect(g.define(MetricType.Counter, 'my.requests')).toBe(c)
    expect(g.increment(c, 2n)).toBe(WasmResult.Ok)
    expect(g.increment(c, -1n)).toBe(WasmResult.BadArgument)
    expect(g.record(c, 5n)).toBe(WasmResult.BadArgument)
    const h = g.define(MetricType.Histogram, 'latency')
    expect(g.record(h, 7n)).toBe(WasmResult.Ok)
    expect(g.get(h)).toBe(7)
    expect(g.get(c)).toBe(2)
    expect(g.increment(99, 1n)).toBe(WasmResult.NotFound)
    expect(reg.render()).toContain('omnirelay_wasm_my_requests{filter="f"} 2')
  })

  it('refuses unknown types and the host’s own series', () => {
    const reg = new MetricsRegistry()
    reg.gauge('omnirelay_wasm_instances', 'live', ['filter'])
    const g = new GuestMetrics(reg, 'f')
    expect(g.define(7, 'x')).toBe(-WasmResult.BadArgument)
    expect(g.define(MetricType.Gauge, 'instances')).toBe(-WasmResult.BadArgument)
    expect(g.define(MetricType.Counter, 'failures_total')).toBe(-WasmResult.BadArgument)
    g.define(MetricType.Counter, 'same')
    expect(g.define(MetricType.Gauge, 'same')).toBe(-WasmResult.BadArgument)
  })
})
