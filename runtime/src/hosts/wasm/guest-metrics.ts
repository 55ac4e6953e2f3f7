/**
 * Metrics a module defines (`proxy_define_metric`), exported as Prometheus series
 * `omnirelay_wasm_<sanitized name>{filter="<filter>"}`. Ids are per factory, not per
 * instance, so every instance of a filter (and every reload) shares the same series, and a
 * per-request instance restored from a snapshot keeps ids that stay valid.
 */
import type { CounterChild, GaugeChild, HistogramChild, MetricsRegistry } from '../../observability/metrics.ts'
import { MetricType, WasmResult } from './abi.ts'

/** Untrusted modules must not grow the registry without bound. */
const MAX_METRICS = 256
/** The host's own series under the same prefix: a module must not write into them. */
const RESERVED = new Set(['instances', 'instances_created_total', 'failures_total', 'log_dropped_total'])
const VALUE_BUCKETS = [1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 100_000, 1_000_000]

type Entry =
  | { type: typeof MetricType.Counter; child: CounterChild }
  | { type: typeof MetricType.Gauge; child: GaugeChild }
  | { type: typeof MetricType.Histogram; child: HistogramChild }

export class GuestMetrics {
  readonly #registry: MetricsRegistry
  readonly #filter: string
  readonly #byName = new Map<string, number>()
  readonly #entries: Entry[] = []

  constructor(registry: MetricsRegistry, filter: string) {
    this.#registry = registry
    this.#filter = filter
  }

  /** Returns the metric id (>= 1), or a WasmResult error as a negative number. */
  define(type: number, name: string): number {
    const key = `${type}:${name}`
    const existing = this.#byName.get(key)
    if (existing !== undefined) return existing
    if (this.#entries.length >= MAX_METRICS) return -WasmResult.BadArgument
    const sanitized = name.replace(/[^a-zA-Z0-9_]/g, '_')
    if (RESERVED.has(sanitized)) return -WasmResult.BadArgument
    const prom = `omnirelay_wasm_${sanitized}`
    const help = `Filter-defined metric "${name.replace(/[\n\\]/g, ' ')}"`
    let entry: Entry
    try {
      if (type === MetricType.Counter) entry = { type, child: this.#registry.counter(prom, help, ['filter']).labels(this.#filter) }
      else if (type === MetricType.Gauge) entry = { type, child: this.#registry.gauge(prom, help, ['filter']).labels(this.#filter) }
      else if (type === MetricType.Histogram) {
        entry = { type, child: this.#registry.histogram(prom, help, ['filter'], VALUE_BUCKETS).labels(this.#filter) }
      } else return -WasmResult.BadArgument
    } catch {
      // Same name registered with another type (by this or another filter).
      return -WasmResult.BadArgument
    }
    this.#entries.push(entry)
    const id = this.#entries.length
    this.#byName.set(key, id)
    return id
  }

  increment(id: number, delta: bigint): number {
    const e = this.#entries[id - 1]
    if (!e) return WasmResult.NotFound
    const d = Number(delta)
    if (e.type === MetricType.Counter) {
      if (d < 0) return WasmResult.BadArgument
      e.child.inc(d)
    } else if (e.type === MetricType.Gauge) e.child.inc(d)
    else return WasmResult.BadArgument
    return WasmResult.Ok
  }

  record(id: number, value: bigint): number {
    const e = this.#entries[id - 1]
    if (!e) return WasmResult.NotFound
    const v = Number(value)
    if (e.type === MetricType.Gauge) e.child.set(v)
    else if (e.type === MetricType.Histogram) e.child.observe(v)
    else return WasmResult.BadArgument
    return WasmResult.Ok
  }

  /** The value, or undefined for unknown ids; histograms report their sum. */
  get(id: number): number | undefined {
    const e = this.#entries[id - 1]
    if (!e) return undefined
    return e.type === MetricType.Histogram ? e.child.snapshot().sum : e.child.get()
  }
}
