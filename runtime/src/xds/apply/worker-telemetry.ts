/**
 * Rollout telemetry with workers: each worker aggregates what it served (split variants per
 * request, routes and filters from its own metrics), the primary collects the workers'
 * series every interval and adds them up here, in the aggregator its exporter sends to
 * central. Series of one key from several workers become one series with their sum, so
 * central sees one node, as it would without workers.
 */
import type { SeriesWire } from '../../telemetry/proto.ts'
import type { TelemetryAggregator } from '../../telemetry/aggregator.ts'

/**
 * Adds one worker's series into `agg`.
 * @example
 * for (const part of await pool.collectTelemetry()) addWorkerSeries(aggregator, part.series)
 */
export function addWorkerSeries(agg: TelemetryAggregator, series: readonly SeriesWire[]): void {
  for (const s of series) {
    const c = agg.cell(s)
    c.requests += s.requests
    for (let i = 0; i < c.classes.length && i < s.responsesByClass.length; i++) c.classes[i]! += s.responsesByClass[i]!
    c.localReplies += s.localReplies
    for (let i = 0; i < c.latency.length && i < s.latencyBuckets.length; i++) c.latency[i]! += s.latencyBuckets[i]!
    c.latencySumMs += s.latencySumMs
    for (const [code, n] of Object.entries(s.traps)) {
      const t = (c.traps ??= new Map())
      t.set(code, (t.get(code) ?? 0) + n)
    }
    if (s.fuelCount > 0) c.fuel(s.fuelSum, s.fuelCount)
  }
}
