/**
 * One analysis of a step: B against A on success rate, p99 latency, trap rate and fuel per
 * request. "wait" when either side has too little traffic — a step never passes on no data
 * (Argo's Inconclusive). A's baseline may come from a longer window than B's: at high B
 * weights A sees little traffic, and at 100 % none.
 */
import type { VersionStats } from '../telemetry/query.ts'
import type { AnalysisSpec } from './types.ts'

export interface Check {
  metric: 'success-rate' | 'p99' | 'trap-rate' | 'fuel'
  ok: boolean
  a: number | null
  b: number | null
  limit: number | null
}

export interface Verdict {
  result: 'pass' | 'fail' | 'wait'
  checks: Check[]
  /** One line: what failed, or what is missing. */
  reason: string
}

/**
 * @example
 * judge(cmp.a, cmp.b, DEFAULT_ANALYSIS) // => { result: 'fail', reason: 'success-rate: B 0.8 < limit 0.99', ... }
 */
export function judge(a: VersionStats, b: VersionStats, spec: AnalysisSpec): Verdict {
  if (b.requests < spec.minRequests) return { result: 'wait', checks: [], reason: `not enough traffic on B (${b.requests} < ${spec.minRequests} requests)` }
  if (a.requests < spec.minRequests) return { result: 'wait', checks: [], reason: `not enough traffic on A (${a.requests} < ${spec.minRequests} requests)` }
  const checks: Check[] = []
  const aErr = a.errorRate ?? 0
  const bErr = b.errorRate ?? 0
  let errLimit = aErr + spec.maxErrorRateIncrease
  if (spec.minSuccessRate !== undefined) errLimit = Math.min(errLimit, 1 - spec.minSuccessRate)
  checks.push({ metric: 'success-rate', ok: bErr <= errLimit + 1e-12, a: 1 - aErr, b: 1 - bErr, limit: 1 - errLimit })
  if (a.p99Ms !== null && b.p99Ms !== null) {
    const limit = Math.max(a.p99Ms * spec.maxP99Ratio, a.p99Ms + spec.p99SlackMs)
    checks.push({ metric: 'p99', ok: b.p99Ms <= limit, a: a.p99Ms, b: b.p99Ms, limit })
  }
  const tLimit = (a.trapRate ?? 0) + spec.maxTrapRateIncrease
  checks.push({ metric: 'trap-rate', ok: (b.trapRate ?? 0) <= tLimit + 1e-12, a: a.trapRate, b: b.trapRate, limit: tLimit })
  if (a.fuelPerRequest !== null && b.fuelPerRequest !== null) {
    const limit = a.fuelPerRequest * spec.maxFuelRatio
    checks.push({ metric: 'fuel', ok: b.fuelPerRequest <= limit, a: a.fuelPerRequest, b: b.fuelPerRequest, limit })
  }
  const failed = checks.filter((c) => !c.ok)
  if (failed.length) {
    return { result: 'fail', checks, reason: failed.map((c) => `${c.metric}: B ${round(c.b)} vs limit ${round(c.limit)} (A ${round(c.a)})`).join('; ') }
  }
  return { result: 'pass', checks, reason: `B within limits on ${b.requests} requests (A ${a.requests})` }
}

function round(n: number | null): string {
  return n === null ? '-' : String(Math.round(n * 10_000) / 10_000)
}
