/**
 * The question rollouts ask: how does version B do against version A over the last N
 * seconds? Rates come from summed counters; p99 from the summed latency histogram.
 */
import { LATENCY_BOUNDS_MS } from '@omnirelay/runtime/telemetry/proto.ts'
import type { Selection, TelemetryStore, WindowTotals } from './store.ts'

export interface VersionStats {
  version: string
  requests: number
  /** Responses seen (sum of classes). */
  responses: number
  /** 5xx / responses; null without responses. */
  errorRate: number | null
  successRate: number | null
  /** Interpolated from the histogram, ms; null without requests. */
  p99Ms: number | null
  traps: number
  trapsByCode: Record<string, number>
  /** traps / requests; null without requests. */
  trapRate: number | null
  /** null when no fuel was reported (unmetered filter). */
  fuelPerRequest: number | null
  localReplies: number
  nodes: number
}

export interface Comparison {
  filter: string
  windowMs: number
  a: VersionStats
  b: VersionStats
}

export interface CompareQuery {
  filter: string
  versions: readonly [string, string]
  /** Window length, ms. */
  windowMs: number
  minEpoch?: number
  group?: string
  route?: string
}

/** Quantile from bucket counts, linear within the bucket (the +Inf bucket reports its lower bound * 2). */
export function quantileMs(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, n) => a + n, 0)
  if (total === 0) return null
  const rank = q * total
  let cum = 0
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!
    if (n > 0 && cum + n >= rank) {
      const lo = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1]!
      const hi = i < LATENCY_BOUNDS_MS.length ? LATENCY_BOUNDS_MS[i]! : lo * 2
      return lo + ((hi - lo) * (rank - cum)) / n
    }
    cum += n
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]! * 2
}

export function statsOf(version: string, t: WindowTotals): VersionStats {
  const responses = t.classes.reduce((a, n) => a + n, 0)
  const errorRate = responses ? t.classes[4]! / responses : null
  return {
    version,
    requests: t.requests,
    responses,
    errorRate,
    successRate: errorRate === null ? null : 1 - errorRate,
    p99Ms: quantileMs(t.latency, 0.99),
    traps: t.traps,
    trapsByCode: t.trapsByCode,
    trapRate: t.requests ? t.traps / t.requests : null,
    fuelPerRequest: t.fuelCount ? t.fuelSum / t.fuelCount : null,
    localReplies: t.localReplies,
    nodes: t.nodes,
  }
}

/**
 * @example
 * compareVersions(store, { filter: 'edge.waf', versions: ['1.0.0', '2.0.0'], windowMs: 60_000 }, Date.now())
 * // => { a: { errorRate: 0.001, p99Ms: 12, ... }, b: { errorRate: 0.2, ... } }
 */
export function compareVersions(store: TelemetryStore, q: CompareQuery, now: number): Comparison {
  const sel = (version: string): Selection => {
    const s: Selection = { filter: q.filter, version, sinceMs: now - q.windowMs }
    if (q.minEpoch !== undefined) s.minEpoch = q.minEpoch
    if (q.group !== undefined) s.group = q.group
    if (q.route !== undefined) s.route = q.route
    return s
  }
  return {
    filter: q.filter,
    windowMs: q.windowMs,
    a: statsOf(q.versions[0], store.totals(sel(q.versions[0]))),
    b: statsOf(q.versions[1], store.totals(sel(q.versions[1]))),
  }
}
