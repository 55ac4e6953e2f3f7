/**
 * Passive health: ejects an endpoint after consecutive 5xx (or local failures: resets,
 * timeouts) or consecutive connect failures, for an exponentially growing time, never more
 * than `maxEjectionPercent` of the cluster at once (but at least one endpoint when the
 * percentage is above zero, as Envoy does, so small clusters can eject at all).
 */
import type { Logger } from '../observability/logger.ts'
import type { ClusterMetrics } from './cluster-metrics.ts'
import type { Endpoint } from './endpoint.ts'
import type { OutlierDetectionConfig } from './types.ts'

/** Upper bound of one ejection, whatever the multiplier (Envoy's default max_ejection_time). */
const MAX_EJECTION_MS = 300_000

export class OutlierDetector {
  readonly #cfg: OutlierDetectionConfig
  readonly #endpoints: readonly Endpoint[]
  readonly #onChange: () => void
  readonly #m: ClusterMetrics
  readonly #log: Logger
  #stopped = false

  constructor(cfg: OutlierDetectionConfig, endpoints: readonly Endpoint[], onChange: () => void, m: ClusterMetrics, log: Logger) {
    this.#cfg = cfg
    this.#endpoints = endpoints
    this.#onChange = onChange
    this.#m = m
    this.#log = log
    // Endpoints adopted from a previous config may still be ejected: finish their time here.
    const now = Date.now()
    for (const ep of endpoints) if (ep.ejected) this.#arm(ep, Math.max(0, ep.ejectedUntil - now))
  }

  /** A response below 500 arrived: the streak is broken. */
  success(ep: Endpoint): void {
    ep.consecutive5xx = 0
    ep.consecutiveConnectFailures = 0
  }

  /** A 5xx response, or a local failure after connecting (reset, timeout). */
  serverError(ep: Endpoint): void {
    ep.consecutiveConnectFailures = 0
    const limit = this.#cfg.consecutive5xx
    if (limit > 0 && ++ep.consecutive5xx >= limit) this.#eject(ep, 'consecutive_5xx')
  }

  connectFailure(ep: Endpoint): void {
    const limit = this.#cfg.consecutiveConnectFailures
    if (limit > 0 && ++ep.consecutiveConnectFailures >= limit) this.#eject(ep, 'consecutive_connect_failures')
  }

  stop(): void {
    this.#stopped = true
    for (const ep of this.#endpoints) {
      if (ep.ejectedBy !== this) continue // adopted by a newer config's detector
      if (ep.ejectionTimer) clearTimeout(ep.ejectionTimer)
      ep.ejectionTimer = undefined
      ep.ejectedBy = undefined
    }
  }

  #eject(ep: Endpoint, reason: string): void {
    ep.consecutive5xx = 0
    ep.consecutiveConnectFailures = 0
    if (ep.ejected || this.#stopped) return
    const eps = this.#endpoints
    const pct = this.#cfg.maxEjectionPercent
    const allowed = pct <= 0 ? 0 : Math.max(1, Math.floor((eps.length * pct) / 100))
    let ejected = 0
    for (const e of eps) if (e.ejected) ejected++
    if (ejected >= allowed) return

    const base = Math.max(1, this.#cfg.baseEjectionMs)
    const now = Date.now()
    // The multiplier decays by one for every base period the endpoint stayed in service.
    if (ep.lastUnejectedAt > 0) {
      ep.ejectionCount = Math.max(0, ep.ejectionCount - Math.floor((now - ep.lastUnejectedAt) / base))
    }
    ep.ejectionCount++
    const ms = Math.min(base * 2 ** (ep.ejectionCount - 1), Math.max(base, MAX_EJECTION_MS))
    ep.ejected = true
    this.#arm(ep, ms)
    this.#m.ejections.inc()
    this.#log.warn('upstream endpoint ejected', { endpoint: ep.address, reason, ejectionMs: ms })
    this.#onChange()
  }

  #arm(ep: Endpoint, ms: number): void {
    if (ep.ejectionTimer) clearTimeout(ep.ejectionTimer)
    ep.ejectedUntil = Date.now() + ms
    ep.ejectedBy = this
    ep.ejectionTimer = setTimeout(uneject, ms, this, ep)
    ep.ejectionTimer.unref()
  }

  /** @internal called by the ejection timer. */
  restore(ep: Endpoint): void {
    if (ep.ejectedBy !== this) return
    ep.ejectionTimer = undefined
    ep.ejectedBy = undefined
    if (this.#stopped || !ep.ejected) return
    ep.ejected = false
    ep.lastUnejectedAt = Date.now()
    this.#log.info('upstream endpoint restored', { endpoint: ep.address })
    this.#onChange()
  }
}

function uneject(d: OutlierDetector, ep: Endpoint): void {
  d.restore(ep)
}
