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

// Per pair of factories (A, B): the slots built over them that are not closed yet (a new
// epoch's slot is tracked before the old one is closed, once its requests drained).
interface Tracked {
  slots: SplitSlot[]
  /** Filter names claimed in the aggregator while `slots` is not empty. */
  names: string[]
}

/**
 * @example
 * const observer = new SplitTelemetry(aggregator, metrics)
 * const slot = new SplitSlot(a, b, { slot: 'waf', weightB: 500, observer })
 * observer.track(slot)   // when built; slot.close() calls observer.untrack(slot)
 */
export class SplitTelemetry implements VariantObserver {
  readonly #agg: TelemetryAggregator
  readonly #metrics: MetricsRegistry | undefined
  readonly #slots = new WeakMap<SplitSlot, Slot>()
  readonly #tracked = new Map<string, Tracked>()

  constructor(agg: TelemetryAggregator, metrics?: MetricsRegistry) {
    this.#agg = agg
    this.#metrics = metrics
  }

  /**
   * Starts copying the fuel of the slot's two versions into its series, and claims their
   * filter names so the per-filter poller (`MetricsTelemetry`) leaves them out: each
   * request's fuel and failures are then counted once, per version. Called for every slot
   * built; a new epoch's slot over the same two factories takes over the old poller.
   */
  track(slot: SplitSlot): void {
    const key = `${slot.factories[0].name}\u0000${slot.factories[1].name}`
    let t = this.#tracked.get(key)
    if (t) {
      if (t.slots.includes(slot)) return
      if (t.slots.length === 0) for (const n of t.names) this.#agg.claimSplitFilter(n)
      t.slots.push(slot)
      return
    }
    // The pipeline counts the slot's failures under the slot's name (A's, normally).
    t = { slots: [slot], names: [...new Set([slot.name, slot.factories[0].name, slot.factories[1].name])] }
    this.#tracked.set(key, t)
    for (const n of t.names) this.#agg.claimSplitFilter(n)
    const m = this.#metrics
    // Two factories of one slot may share a filter name; then fuel cannot be told apart.
    if (!m || slot.factories[0].name === slot.factories[1].name) return
    const hist = m.histogram('omnirelay_filter_fuel_used', 'Fuel used per request by a filter', ['filter'])
    const children = slot.factories.map((f) => hist.labels(f.name))
    const last = children.map((c) => ({ count: c.snapshot().count, sum: c.snapshot().sum }))
    const tracked = t
    this.#agg.addPoller(() => {
      for (let v = 0; v < 2; v++) {
        const s = children[v]!.snapshot()
        const dc = s.count - last[v]!.count
        const ds = s.sum - last[v]!.sum
        last[v] = { count: s.count, sum: s.sum }
        // No live slot: the names are released and the metrics poller reports this fuel.
        if (dc <= 0 || tracked.slots.length === 0) continue
        this.#fuelCell(tracked.slots, v)?.fuel(ds, dc)
      }
    })
  }

  /** The slot is closed (its epoch drained or was refused): stops reporting for it. */
  untrack(slot: SplitSlot): void {
    const t = this.#tracked.get(`${slot.factories[0].name}\u0000${slot.factories[1].name}`)
    const i = t ? t.slots.indexOf(slot) : -1
    if (!t || i < 0) return
    t.slots.splice(i, 1)
    if (t.slots.length === 0) for (const n of t.names) this.#agg.releaseSplitFilter(n)
  }

  // The newest slot's cell of the variant, else an older slot's (requests still draining).
  #fuelCell(slots: readonly SplitSlot[], v: number): SeriesCell | undefined {
    for (let i = slots.length - 1; i >= 0; i--) {
      const c = this.#slots.get(slots[i]!)?.cells[v]
      if (c?.live) return c
    }
    return undefined
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
      c = this.#agg.cell({ epoch: info.epoch, route, filter: slot.name, version: f.version ?? '', variant: VARIANTS[variant] })
      s.cells[variant] = c
    }
    return c
  }
}
