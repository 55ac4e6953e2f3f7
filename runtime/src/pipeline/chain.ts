/**
 * A filter chain: the ordered factories one request runs through, with their per-filter
 * metrics children resolved once (never per request).
 */
import type { CounterChild, MetricsRegistry } from '../observability/metrics.ts'
import type { FailurePolicy, FilterFactory } from './filter.ts'
import { BODY_PHASES } from './phases.ts'

/** Per-filter counters, shared by every chain the filter appears in. */
export class FilterStats {
  readonly calls: CounterChild
  readonly skipped: CounterChild
  readonly #failures = new Map<string, CounterChild>()
  readonly #metrics: MetricsRegistry
  readonly #name: string

  constructor(metrics: MetricsRegistry, name: string) {
    this.#metrics = metrics
    this.#name = name
    this.calls = metrics.counter('omnirelay_filter_calls_total', 'Filter hook calls', ['filter']).labels(name)
    this.skipped = metrics.counter('omnirelay_filter_fail_open_total', 'Requests where a failed fail-open filter was skipped', ['filter']).labels(name)
  }

  /** Failures are rare: resolving the labelled child here is off the hot path. */
  failure(code: string): CounterChild {
    let c = this.#failures.get(code)
    if (!c) {
      c = this.#metrics.counter('omnirelay_filter_failures_total', 'Filter failures by reason code', ['filter', 'code']).labels(this.#name, code)
      this.#failures.set(code, c)
    }
    return c
  }
}

export interface ChainEntry {
  readonly factory: FilterFactory
  readonly name: string
  readonly phases: number
  readonly failurePolicy: FailurePolicy
  /** Most bytes this filter may make the host buffer. */
  readonly maxBodyBytes: number
  readonly stats: FilterStats
}

export interface FilterChain {
  readonly entries: readonly ChainEntry[]
  /** Union of the entries' phases. */
  readonly phases: number
  /** Whether any entry reads bodies (else bodies are piped untouched). */
  readonly bodies: boolean
}

export function makeChain(entries: readonly ChainEntry[]): FilterChain {
  let phases = 0
  for (const e of entries) phases |= e.phases
  return { entries, phases, bodies: (phases & BODY_PHASES) !== 0 }
}

export const EMPTY_CHAIN: FilterChain = makeChain([])
