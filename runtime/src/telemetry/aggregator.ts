/**
 * Per-interval aggregation of what a data plane served, keyed by (epoch, route, filter,
 * bundle version, split variant). Recording is a field increment on a cell resolved once
 * (callers cache cells); `drain()` turns the non-empty cells into wire series and resets
 * them. Memory is bounded: at most `maxSeries` cells; records for a key beyond that land
 * in an overflow cell that only counts them (reported as dropped series).
 */
import { LATENCY_BOUNDS_MS, type SeriesWire } from './proto.ts'

const NB = LATENCY_BOUNDS_MS.length + 1

export interface SeriesKey {
  epoch: number
  route: string
  filter: string
  version: string
  variant: string
}

/** One series' counters for the current interval. */
export class SeriesCell implements SeriesKey {
  requests = 0
  readonly classes = new Float64Array(5)
  localReplies = 0
  readonly latency = new Float64Array(NB)
  latencySumMs = 0
  traps: Map<string, number> | undefined = undefined
  fuelSum = 0
  fuelCount = 0
  /** False once the aggregator dropped this cell (idle): holders must resolve a new one. */
  live = true

  constructor(
    readonly epoch: number,
    readonly route: string,
    readonly filter: string,
    readonly version: string,
    readonly variant: string,
  ) {}

  /** One finished request. */
  observe(status: number, latencyMs: number, localReply: boolean): void {
    this.requests++
    const c = ((status / 100) | 0) - 1
    if (c >= 0 && c < 5) this.classes[c]!++
    if (localReply) this.localReplies++
    let i = 0
    while (i < LATENCY_BOUNDS_MS.length && latencyMs > LATENCY_BOUNDS_MS[i]!) i++
    this.latency[i]!++
    this.latencySumMs += latencyMs
  }

  /** A filter failure (rare: a map lookup is fine here). */
  trap(code: string): void {
    const t = (this.traps ??= new Map())
    t.set(code, (t.get(code) ?? 0) + 1)
  }

  fuel(sum: number, count: number): void {
    this.fuelSum += sum
    this.fuelCount += count
  }

  get empty(): boolean {
    return this.requests === 0 && this.traps === undefined && this.fuelCount === 0
  }

  toWire(): SeriesWire {
    return {
      epoch: this.epoch,
      route: this.route,
      filter: this.filter,
      version: this.version,
      variant: this.variant,
      requests: this.requests,
      responsesByClass: Array.from(this.classes),
      localReplies: this.localReplies,
      latencyBuckets: Array.from(this.latency),
      latencySumMs: this.latencySumMs,
      traps: this.traps ? Object.fromEntries(this.traps) : {},
      fuelSum: this.fuelSum,
      fuelCount: this.fuelCount,
    }
  }

  reset(): void {
    this.requests = 0
    this.classes.fill(0)
    this.localReplies = 0
    this.latency.fill(0)
    this.latencySumMs = 0
    this.traps = undefined
    this.fuelSum = 0
    this.fuelCount = 0
  }
}

export interface TelemetryAggregatorOptions {
  /** Most live series (default 4096). */
  maxSeries?: number
}

/**
 * @example
 * const agg = new TelemetryAggregator()
 * const cell = agg.cell({ epoch: 7, route: 'api', filter: 'edge.waf', version: '2.0.0', variant: 'b' }) // once
 * cell.observe(200, 3.2, false) // per request
 * const series = agg.drain()    // per interval
 */
export class TelemetryAggregator {
  readonly #cells = new Map<string, SeriesCell>()
  readonly #max: number
  readonly #pollers: (() => void)[] = []
  readonly #overflow = new SeriesCell(0, '', '', '', '')
  readonly #splitFilters = new Map<string, number>()
  #droppedSeries = 0

  constructor(opts: TelemetryAggregatorOptions = {}) {
    this.#max = opts.maxSeries ?? 4096
    this.#overflow.live = false
  }

  /** The cell of a key; resolve once and keep it while `cell.live`. */
  cell(k: SeriesKey): SeriesCell {
    const id = `${k.epoch}\u0000${k.route}\u0000${k.filter}\u0000${k.version}\u0000${k.variant}`
    let c = this.#cells.get(id)
    if (c) return c
    if (this.#cells.size >= this.#max) {
      this.#droppedSeries++
      return this.#overflow
    }
    c = new SeriesCell(k.epoch, k.route, k.filter, k.version, k.variant)
    this.#cells.set(id, c)
    return c
  }

  /** Runs before each drain (e.g. to copy fuel histograms into cells). */
  addPoller(fn: () => void): void {
    this.#pollers.push(fn)
  }

  get size(): number {
    return this.#cells.size
  }

  /**
   * Marks a filter whose fuel and failures a split reports per version (`SplitTelemetry`),
   * until as many `releaseSplitFilter` calls. Central sums a version's series over variants,
   * so filter-level pollers must leave such a filter out or it is counted twice.
   */
  claimSplitFilter(filter: string): void {
    this.#splitFilters.set(filter, (this.#splitFilters.get(filter) ?? 0) + 1)
  }

  releaseSplitFilter(filter: string): void {
    const n = (this.#splitFilters.get(filter) ?? 0) - 1
    if (n > 0) this.#splitFilters.set(filter, n)
    else this.#splitFilters.delete(filter)
  }

  /** Whether a split reports this filter per version now (see `claimSplitFilter`). */
  isSplitFilter(filter: string): boolean {
    return this.#splitFilters.has(filter)
  }

  /**
   * The interval's series; cells are reset, and cells that stayed empty for a whole
   * interval are dropped (old epochs go away by themselves).
   */
  drain(): { series: SeriesWire[]; droppedSeries: number } {
    for (const p of this.#pollers) p()
    const series: SeriesWire[] = []
    for (const [id, c] of this.#cells) {
      if (c.empty) {
        c.live = false
        this.#cells.delete(id)
        continue
      }
      series.push(c.toWire())
      c.reset()
    }
    const droppedSeries = this.#droppedSeries
    this.#droppedSeries = 0
    this.#overflow.reset()
    return { series, droppedSeries }
  }
}
