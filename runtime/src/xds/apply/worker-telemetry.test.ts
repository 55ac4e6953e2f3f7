import { describe, expect, it } from 'vitest'
import { TelemetryAggregator } from '../../telemetry/aggregator.ts'
import { addWorkerSeries } from './worker-telemetry.ts'

const key = { epoch: 3, route: 'app', filter: 'main.guard', version: '2.0.0', variant: 'b' }

function worker(requests: number, trap: string, fuel: number) {
  const agg = new TelemetryAggregator()
  const c = agg.cell(key)
  for (let i = 0; i < requests; i++) c.observe(i % 2 ? 200 : 503, 3 + i, i % 2 === 0)
  c.trap(trap)
  c.fuel(fuel, requests)
  return agg.drain().series
}

describe('addWorkerSeries', () => {
  it('adds series of one key from several workers into one, every counter summed', () => {
    const primary = new TelemetryAggregator()
    addWorkerSeries(primary, worker(4, 'fuel_exhausted', 400))
    addWorkerSeries(primary, worker(3, 'timeout', 90))
    addWorkerSeries(primary, worker(1, 'timeout', 10))
    const { series } = primary.drain()
    expect(series).toHaveLength(1)
    const s = series[0]!
    expect(s).toMatchObject({ ...key, requests: 8, localReplies: 5, fuelSum: 500, fuelCount: 8, traps: { fuel_exhausted: 1, timeout: 2 } })
    expect(s.responsesByClass).toEqual([0, 3, 0, 0, 5])
    expect(s.latencyBuckets.reduce((a, n) => a + n, 0)).toBe(8)
    expect(s.latencySumMs).toBe(3 + 4 + 5 + 6 + 3 + 4 + 5 + 3)
  })

  it('keeps different keys apart', () => {
    const primary = new TelemetryAggregator()
    addWorkerSeries(primary, worker(2, 't', 1))
    addWorkerSeries(primary, worker(2, 't', 1).map((s) => ({ ...s, variant: 'a', version: '1.0.0' })))
    expect(primary.drain().series.map((s) => [s.version, s.requests])).toEqual([['2.0.0', 2], ['1.0.0', 2]])
  })
})
