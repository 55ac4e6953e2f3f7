import { describe, expect, it } from 'vitest'
import { MetricsRegistry } from '../observability/metrics.ts'
import type { FilterFactory } from '../pipeline/filter.ts'
import { createStreamInfo, PipelineStream } from '../pipeline/stream.ts'
import { SplitSlot } from '../rollout/index.ts'
import { TelemetryAggregator } from './aggregator.ts'
import { SplitTelemetry } from './split-observer.ts'

const f = (name: string, version: string): FilterFactory => ({ name, version, kind: 'native', phases: 1, failurePolicy: 'fail-closed', createStream: () => ({}), close: async () => {} })

describe('TelemetryAggregator', () => {
  it('counts by class, latency bucket and trap; drain resets and forgets idle cells', () => {
    const agg = new TelemetryAggregator()
    const c = agg.cell({ epoch: 3, route: 'api', filter: 'waf', version: '1', variant: 'a' })
    expect(agg.cell({ epoch: 3, route: 'api', filter: 'waf', version: '1', variant: 'a' })).toBe(c)
    c.observe(200, 0.5, false)
    c.observe(503, 7, true)
    c.trap('fuel_exhausted')
    const { series } = agg.drain()
    expect(series).toHaveLength(1)
    expect(series[0]).toMatchObject({ epoch: 3, requests: 2, responsesByClass: [0, 1, 0, 0, 1], localReplies: 1, traps: { fuel_exhausted: 1 } })
    expect(series[0]!.latencyBuckets[0]).toBe(1) // <= 1 ms
    expect(series[0]!.latencyBuckets[3]).toBe(1) // 5 < x <= 10 ms
    expect(agg.drain().series).toEqual([])
    expect(c.live).toBe(false)
    expect(agg.size).toBe(0)
  })

  it('bounds the number of series and counts what it dropped', () => {
    const agg = new TelemetryAggregator({ maxSeries: 2 })
    for (let e = 1; e <= 5; e++) agg.cell({ epoch: e, route: 'r', filter: 'f', version: 'v', variant: '' }).observe(200, 1, false)
    const out = agg.drain()
    expect(out.series).toHaveLength(2)
    expect(out.droppedSeries).toBe(3)
  })

  it('records split outcomes and fuel per variant, tagged with the stream epoch and route', () => {
    const agg = new TelemetryAggregator()
    const metrics = new MetricsRegistry()
    const obs = new SplitTelemetry(agg, metrics)
    const slot = new SplitSlot(f('c.waf', '1.0.0'), f('c.waf@2', '2.0.0'), { slot: 'waf', weightB: 5000, observer: obs })
    const fuel = metrics.histogram('omnirelay_filter_fuel_used', 'x', ['filter'], [1e3, 1e6])
    obs.track(slot)
    for (let i = 0; i < 200; i++) {
      const info = createStreamInfo({ requestId: `r${i}`, epoch: 9, routeName: 'api', responseCode: 200 })
      const s = slot.createStream(new PipelineStream({ info }))
      // The host of the chosen version reports its fuel under its own filter name.
      const name = (s as unknown as { variant: number }).variant === 1 ? 'c.waf@2' : 'c.waf'
      fuel.labels(name).observe(name === 'c.waf@2' ? 5000 : 1000)
      s.onDone!()
    }
    const { series } = agg.drain()
    const a = series.find((x) => x.variant === 'a')!
    const b = series.find((x) => x.variant === 'b')!
    expect(a.requests + b.requests).toBe(200)
    expect(a).toMatchObject({ epoch: 9, route: 'api', filter: 'c.waf', version: '1.0.0' })
    expect(b.version).toBe('2.0.0')
    expect(a.fuelSum / a.fuelCount).toBe(1000)
    expect(b.fuelSum / b.fuelCount).toBe(5000)
  })
})
