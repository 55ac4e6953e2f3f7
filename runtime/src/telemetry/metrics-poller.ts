/**
 * Route- and filter-level telemetry for every request at no hot-path cost: once per batch,
 * the proxy's own Prometheus counters and histograms are read (their text exposition, so
 * the metrics contract stays as it is), differenced against the previous read and added to
 * the aggregator under the epoch running at that moment.
 *
 * - per route: requests, responses by class, latency (the proxy's second buckets mapped up
 *   to the next telemetry bucket: quantiles are upper estimates);
 * - per filter (and its bundle version): failures by code, fuel per request.
 *
 * Counts of the last interval before an epoch change land on the new epoch; rollout
 * analysis reads split filters, which are tagged per request, and is not affected.
 *
 * Filters a split runs (A, B, and the slot, which the pipeline counts under A's name) are
 * left out of the per-filter series while the split reports them per version: central
 * sums a version over variants, so both would count each request's fuel and failures.
 * Their deltas are still taken, so nothing piles up for when the split ends.
 */
import type { MetricsRegistry } from '../observability/metrics.ts'
import type { TelemetryAggregator } from './aggregator.ts'
import { LATENCY_BOUNDS_MS } from './proto.ts'

export interface MetricsTelemetryOptions {
  /** The epoch the proxy runs now. */
  epoch: () => number
  /** Bundle version of a filter, when known. */
  versionOf?: (filter: string) => string | undefined
}

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
const WANTED = /^omnirelay_(requests_total|responses_total|request_duration_seconds_bucket|filter_failures_total|filter_fuel_used_(sum|count))$/

function parse(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line.length === 0 || line.charCodeAt(0) === 35 /* # */) continue
    const m = LINE.exec(line)
    if (!m || !WANTED.test(m[1]!)) continue
    const labels: Record<string, string> = {}
    if (m[2]) for (const l of m[2].matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

// Proxy bucket upper bound (s) -> index of the first telemetry bucket that covers it.
function bucketIndex(leSeconds: number): number {
  const ms = leSeconds * 1000
  let i = 0
  while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]! + 1e-9) i++
  return i
}

/**
 * @example
 * new MetricsTelemetry(proxy.metrics, aggregator, { epoch: () => proxy.epoch, versionOf })
 */
export class MetricsTelemetry {
  readonly #metrics: MetricsRegistry
  readonly #opts: MetricsTelemetryOptions
  readonly #last = new Map<string, number>()

  constructor(metrics: MetricsRegistry, agg: TelemetryAggregator, opts: MetricsTelemetryOptions) {
    this.#metrics = metrics
    this.#opts = opts
    agg.addPoller(() => this.#poll(agg))
  }

  #delta(key: string, value: number): number {
    const prev = this.#last.get(key)
    this.#last.set(key, value)
    // A counter that went down was reset (a new registry): its whole value is new.
    return prev === undefined ? value : value >= prev ? value - prev : value
  }

  #poll(agg: TelemetryAggregator): void {
    const epoch = this.#opts.epoch()
    const samples = parse(this.#metrics.render())
    // Histogram buckets are cumulative: difference per bucket, then un-cumulate per series.
    const cum = new Map<string, [number, number][]>()
    const fuel = new Map<string, { sum: number; count: number }>()
    for (const s of samples) {
      const key = `${s.name}${JSON.stringify(s.labels)}`
      const d = this.#delta(key, s.value)
      const route = s.labels.route ?? ''
      switch (s.name) {
        case 'omnirelay_requests_total':
          if (d > 0) agg.cell({ epoch, route, filter: '', version: '', variant: '' }).requests += d
          break
        case 'omnirelay_responses_total': {
          const c = Number((s.labels.class ?? '')[0]) - 1
          if (d > 0 && c >= 0 && c < 5) agg.cell({ epoch, route, filter: '', version: '', variant: '' }).classes[c]! += d
          break
        }
        case 'omnirelay_request_duration_seconds_bucket': {
          const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le)
          const list = cum.get(route) ?? []
          list.push([le, d])
          cum.set(route, list)
          break
        }
        case 'omnirelay_filter_failures_total':
          if (d > 0 && !agg.isSplitFilter(s.labels.filter ?? '')) {
            const f = s.labels.filter ?? ''
            const cell = agg.cell({ epoch, route: '', filter: f, version: this.#opts.versionOf?.(f) ?? '', variant: '' })
            for (let i = 0; i < d; i++) cell.trap(s.labels.code ?? 'unknown')
          }
          break
        default: {
          const f = s.labels.filter ?? ''
          const e = fuel.get(f) ?? { sum: 0, count: 0 }
          if (s.name.endsWith('_sum')) e.sum += d
          else e.count += d
          fuel.set(f, e)
        }
      }
    }
    for (const [route, list] of cum) {
      // Per route the series may be split by cluster: sum cumulative counts per bound first.
      const byLe = new Map<number, number>()
      for (const [le, d] of list) byLe.set(le, (byLe.get(le) ?? 0) + d)
      const bounds = [...byLe.keys()].sort((a, b) => a - b)
      let prev = 0
      let cell
      for (const le of bounds) {
        const c = byLe.get(le)!
        const n = c - prev
        prev = c
        if (n <= 0) continue
        cell ??= agg.cell({ epoch, route, filter: '', version: '', variant: '' })
        cell.latency[le === Infinity ? LATENCY_BOUNDS_MS.length : bucketIndex(le)]! += n
      }
    }
    for (const [f, e] of fuel) if (e.count > 0 && !agg.isSplitFilter(f)) agg.cell({ epoch, route: '', filter: f, version: this.#opts.versionOf?.(f) ?? '', variant: '' }).fuel(e.sum, e.count)
  }
}
