/**
 * Connects split slots to the aggregator: per variant, the outcome of each request (status
 * class, latency, local reply), failures by code, and — polled from the hosts' own
 * `omnirelay_filter_fuel_used` histograms at each drain — fuel per request.
 */
import type { MetricsRegistry } from '../observability/metrics.ts'
import type { StreamInfo } from '../pipeline/filter.ts'
import type { SplitSlot, Variant, VariantObserver } from '../rollout/index.ts'
import type { SeriesCell, TelemetryAggregator } from './aggregator.ts'

const VARIANTS = ['a', 'b'] as const

// Per slot and variant: the last cell used, re-resolved only when the epoch or route changes.
interface Slot {
  cells: [SeriesCell | undefined, SeriesCell | undefined]
}

/**
 * @example
 * const observer = new SplitTelemetry(aggregator, metrics)
 * const slot = new SplitSlot(a, b, { slot: 'waf', weightB: 500, observer })
 * observer.track(slot)
 */
export class SplitTelemetry implements VariantObserver {
  readonly #agg: TelemetryAggregator
  readonly #metrics: MetricsRegistry | undefined
  readonly #slots = new WeakMap<SplitSlot, Slot>()

  constructor(agg: TelemetryAggregator, metrics?: MetricsRegistry) {
    this.#agg = agg
    this.#metrics = metrics
  }

  /** Starts copying the fuel of the slot's two versions into its series (call once per slot). */
  track(slot: SplitSlot): void {
    const m = this.#metrics
    if (!m) return
    const last = [
      { count: 0, sum: 0 },
      { count: 0, sum: 0 },
    ]
    const hist = m.histogram('omnirelay_filter_fuel_used', 'Fuel used per request by a filter', ['filter'])
    // Two factories of one slot may share a filter name; then fuel cannot be told apart.
    const children = slot.factories.map((f) => hist.labels(f.name))
    if (slot.factories[0].name === slot.factories[1].name) return
    this.#agg.addPoller(() => {
      for (let v = 0; v < 2; v++) {
        const s = children[v]!.snapshot()
        const dc = s.count - last[v]!.count
        const ds = s.sum - last[v]!.sum
        last[v] = { count: s.count, sum: s.sum }
        const cell = this.#state(slot).cells[v]
        if (dc > 0 && cell) cell.fuel(ds, dc)
      }
    })
  }

  failed(slot: SplitSlot, variant: Variant, code: string, info: StreamInfo): void {
    this.#cell(slot, variant, info).trap(code)
  }

  done(slot: SplitSlot, variant: Variant, info: StreamInfo): void {
    this.#cell(slot, variant, info).observe(info.responseCode, performance.now() - info.startMonotonic, info.localReplyDetails !== undefined)
  }

  #state(slot: SplitSlot): Slot {
    let s = this.#slots.get(slot)
    if (!s) this.#slots.set(slot, (s = { cells: [undefined, undefined] }))
    return s
  }

  #cell(slot: SplitSlot, variant: Variant, info: StreamInfo): SeriesCell {
    const s = this.#state(slot)
    const route = info.routeName ?? ''
    let c = s.cells[variant]
    if (c === undefined || !c.live || c.epoch !== info.epoch || c.route !== route) {
      const f = slot.factories[variant]
      c = this.#agg.cell({ epoch: info.epoch, route, filter: slot.chooser.slot, version: f.version ?? '', variant: VARIANTS[variant] })
      s.cells[variant] = c
    }
    return c
  }
}
