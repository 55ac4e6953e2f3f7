import { describe, expect, it } from 'vitest'
import { MetricsRegistry } from '../observability/metrics.ts'
import { ProxyMetrics } from '../observability/proxy-metrics.ts'
import { TelemetryAggregator } from './aggregator.ts'
import { MetricsTelemetry } from './metrics-poller.ts'

describe('MetricsTelemetry', () => {
  it('turns the proxy metrics into per-route and per-filter series of the running epoch, as deltas', () => {
    const metrics = new MetricsRegistry()
    const pm = new ProxyMetrics(metrics)
    const agg = new TelemetryAggregator()
    let epoch = 4
    new MetricsTelemetry(metrics, agg, { epoch: () => epoch, versionOf: (f) => (f === 'main.waf' ? '2.0.0' : undefined) })
    const route = pm.route('edge', 'api', 'app')
    const fuel = metrics.histogram('omnirelay_filter_fuel_used', 'f', ['filter'], [1e3, 1e6]).labels('main.waf')
    const failures = metrics.counter('omnirelay_filter_failures_total', 'f', ['filter', 'code'])
    agg.drain() // baseline: whatever was registered at zero
    for (let i = 0; i < 10; i++) {
      route.requests.inc()
      route.responses[i < 8 ? 2 : 5]!.inc()
      route.duration.observe(i < 9 ? 0.003 : 0.4)
      fuel.observe(500)
    }
    failures.labels('main.waf', 'fuel_exhausted').inc(2)
    const { series } = agg.drain()
    const r = series.find((s) => s.route === 'api')!
    expect(r).toMatchObject({ epoch: 4, filter: '', requests: 10, responsesByClass: [0, 8, 0, 0, 2] })
    expect(r.latencyBuckets[2]).toBe(9) // 2.5-5 ms -> the 5 ms bucket
    expect(r.latencyBuckets[8]).toBe(1) // 250-500 ms -> the 500 ms bucket
    const f = series.find((s) => s.filter === 'main.waf')!
    expect(f).toMatchObject({ epoch: 4, version: '2.0.0', traps: { fuel_exhausted: 2 }, fuelSum: 5000, fuelCount: 10 })
    epoch = 5
    route.requests.inc()
    expect(agg.drain().series).toMatchObject([{ epoch: 5, route: 'api', requests: 1 }])
  })
})
