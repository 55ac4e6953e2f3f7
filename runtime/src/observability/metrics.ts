/**
 * A small Prometheus registry: counters, gauges and histograms with fixed label names.
 *
 * Hot-path rule: resolve a labelled child once (at config time, per route/cluster/filter)
 * and keep it; `child.inc()` is then a field increment with no string work.
 *
 * @example
 * const requests = metrics.counter('omnirelay_requests_total', 'Requests received', ['route'])
 * const perRoute = requests.labels('api')   // once, when the route is built
 * perRoute.inc()                            // per request
 */
export interface CounterChild {
  inc(by?: number): void
  get(): number
}
export interface GaugeChild {
  set(v: number): void
  inc(by?: number): void
  dec(by?: number): void
  get(): number
}
export interface HistogramChild {
  observe(v: number): void
  /** Sum and count, for tests and telemetry. */
  snapshot(): { count: number; sum: number; buckets: readonly number[] }
}

type Kind = 'counter' | 'gauge' | 'histogram'

class Series {
  value = 0
  sum = 0
  count = 0
  readonly bucketCounts: Float64Array
  constructor(
    readonly labelValues: readonly string[],
    buckets: number,
  ) {
    this.bucketCounts = new Float64Array(buckets)
  }
}

/** Default latency buckets, in seconds. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export class Metric<C> {
  readonly #series = new Map<string, Series>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly kind: Kind,
    readonly labelNames: readonly string[],
    readonly buckets: readonly number[],
    private readonly makeChild: (s: Series, buckets: readonly number[]) => C,
  ) {}

  /** The child for these label values (in `labelNames` order). Cache it; do not call per request. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`metric ${this.name}: expected ${this.labelNames.length} label values, got ${values.length}`)
    }
    const key = values.join('\u0000')
    let s = this.#series.get(key)
    if (!s) {
      s = new Series(values, this.buckets.length)
      this.#series.set(key, s)
    }
    return this.makeChild(s, this.buckets)
  }

  /** Drops every series (e.g. gauges of a config that is gone). */
  reset(): void {
    this.#series.clear()
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.kind}`)
    for (const s of this.#series.values()) {
      const lbl = this.#labelText(s.labelValues)
      if (this.kind !== 'histogram') {
        out.push(`${this.name}${lbl ? `{${lbl}}` : ''} ${fmt(s.value)}`)
        continue
      }
      let cumulative = 0
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += s.bucketCounts[i]!
        out.push(`${this.name}_bucket{${lbl ? `${lbl},` : ''}le="${this.buckets[i]}"} ${cumulative}`)
      }
      out.push(`${this.name}_bucket{${lbl ? `${lbl},` : ''}le="+Inf"} ${s.count}`)
      out.push(`${this.name}_sum${lbl ? `{${lbl}}` : ''} ${fmt(s.sum)}`)
      out.push(`${this.name}_count${lbl ? `{${lbl}}` : ''} ${s.count}`)
    }
  }

  #labelText(values: readonly string[]): string {
    let t = ''
    for (let i = 0; i < values.length; i++) {
      if (i) t += ','
      t += `${this.labelNames[i]}="${escapeLabel(values[i]!)}"`
    }
    return t
  }
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(12).replace(/\.?0+$/, '')
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

/** One process-wide (or per-test) set of metrics, rendered as Prometheus text. */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric<unknown>>()

  counter(name: string, help: string, labelNames: readonly string[] = []): Metric<CounterChild> {
    return this.#get(name, help, 'counter', labelNames, [], (s) => ({
      inc: (by = 1) => {
        s.value += by
      },
      get: () => s.value,
    }))
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Metric<GaugeChild> {
    return this.#get(name, help, 'gauge', labelNames, [], (s) => ({
      set: (v) => {
        s.value = v
      },
      inc: (by = 1) => {
        s.value += by
      },
      dec: (by = 1) => {
        s.value -= by
      },
      get: () => s.value,
    }))
  }

  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets: readonly number[] = LATENCY_BUCKETS,
  ): Metric<HistogramChild> {
    return this.#get(name, help, 'histogram', labelNames, buckets, (s, b) => ({
      observe: (v) => {
        s.sum += v
        s.count++
        // Buckets are few (≤ 20): a linear scan is cheaper than a binary search here.
        for (let i = 0; i < b.length; i++) {
          if (v <= b[i]!) {
            s.bucketCounts[i]!++
            return
          }
        }
      },
      snapshot: () => ({ count: s.count, sum: s.sum, buckets: Array.from(s.bucketCounts) }),
    }))
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    const out: string[] = []
    for (const m of this.#metrics.values()) m.render(out)
    return out.join('\n') + '\n'
  }

  #get<C>(
    name: string,
    help: string,
    kind: Kind,
    labelNames: readonly string[],
    buckets: readonly number[],
    make: (s: Series, b: readonly number[]) => C,
  ): Metric<C> {
    const existing = this.#metrics.get(name)
    if (existing) {
      if (existing.kind !== kind || existing.labelNames.join() !== labelNames.join()) {
        throw new Error(`metric ${name} already registered as a ${existing.kind} with labels [${existing.labelNames}]`)
      }
      return existing as Metric<C>
    }
    const m = new Metric<C>(name, help, kind, labelNames, buckets, make)
    this.#metrics.set(name, m as Metric<unknown>)
    return m
  }
}
